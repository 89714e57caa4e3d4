"""The one settings object of a `gateway` command, built once at start-up.

Why it exists: the composition root is the only place that reads environment variables. Each
command builds one `StackSettings` from litellm_config.yaml, the environment and its flags,
and hands it to the components it starts; no component reads the environment or hands a value
to another through it. Precedence, value by value: the flag, then the environment, then the
config file.

    value                 flag                 environment                config file
    Kafka cluster         --bootstrap          KAFKA_BOOTSTRAP_SERVERS    kafka.bootstrap_servers
    dedupe records        -                    REDIS_URL                  kafka.dedupe_redis_url
    provider budgets      -                    REDIS_URL (the proxy's)    budgets.redis_url
    gateway key           -                    LITELLM_MASTER_KEY         - (`up` generates one)
    artifact link key     -                    GATEWAY_ARTIFACT_SIGNING_KEY  artifacts.signing_key
                                                                      (`up` generates one)
    artifact link base    -                    GATEWAY_PUBLIC_URL         artifacts.public_url
                                                                      (`up`: the proxy's URL)
    proxy processes       --workers            GATEWAY_WORKERS            - (default 1)
    provider keys, bases  -                    *_API_KEY, *_API_BASE      os.environ/ references
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec

from consumers.settings import KafkaSettings, load_kafka_settings
from core.config import ConfigError
from core.redact import Redactor
from gateway.broker import BrokerMode, configured_cluster

__all__ = [
    "ARTIFACT_KEY_ENV",
    "MASTER_KEY_ENV",
    "PROVIDER_ENV",
    "PUBLIC_URL_ENV",
    "REDIS_ENV",
    "VERTEX_ENV",
    "WORKERS_ENV",
    "Flags",
    "StackSettings",
    "build_stack_settings",
]

MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
# What litellm_config.yaml's gateway_settings.artifacts refers to for the link signing key and
# the base URL links start with.
ARTIFACT_KEY_ENV = "GATEWAY_ARTIFACT_SIGNING_KEY"
PUBLIC_URL_ENV = "GATEWAY_PUBLIC_URL"
REDIS_ENV = "REDIS_URL"
WORKERS_ENV = "GATEWAY_WORKERS"
# Far above any useful count on one machine: a typo (400 for 4) should not fork 400 proxies.
_MAX_WORKERS = 64
# provider -> (key env var, base env var, path the API base needs after the emulator origin);
# litellm_config.yaml names these variables in its `os.environ/` references.
PROVIDER_ENV: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {
        "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE", ""),
        "openai": ("OPENAI_API_KEY", "OPENAI_API_BASE", "/v1"),
        "gemini": ("GEMINI_API_KEY", "GEMINI_API_BASE", "/v1beta"),
        "fal": ("FAL_KEY", "FAL_API_BASE", ""),
        # Vertex's "key" is a service-account file; its emulator also needs the project and
        # location the plugin and LiteLLM put into every URL (VERTEX_ENV).
        "vertex": ("GOOGLE_APPLICATION_CREDENTIALS", "VERTEX_API_BASE", ""),
    }
)
# Vertex's project and location variables, which the config's `vertex_project` /
# `vertex_location` references read.
VERTEX_ENV = ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION")


@dataclass(frozen=True, slots=True, kw_only=True)
class Flags:
    """What the command line says; None leaves the value to the environment or the config."""

    bootstrap: str | None = None
    group: str | None = None
    proxy_url: str | None = None
    handler: str | None = None
    handler_options: Mapping[str, str] = field(default_factory=dict)
    metrics_port: int | None = None
    broker_mode: BrokerMode = "auto"
    kafka_data: Path | None = None
    host: str = "127.0.0.1"
    port: int = 4000
    with_kafka: bool = True
    # Proxy worker processes serving the port; None leaves it to GATEWAY_WORKERS (else 1).
    workers: int | None = None
    log_json: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StackSettings:
    """Everything the components of one `gateway` command need, resolved once."""

    # litellm_config.yaml; None for commands that run on gateway_settings.kafka's defaults.
    config: Path | None
    # gateway_settings.kafka with the flags and the environment applied. Its
    # bootstrap_servers is the configured cluster; None means "start a local broker".
    kafka: KafkaSettings
    # Where the cluster was named (a flag, a variable or the config), for the start-up line.
    cluster_source: str | None
    broker_mode: BrokerMode
    kafka_data: Path | None
    # Where the Redis URLs came from, for the start-up lines.
    redis_source: str
    # The gateway key: the proxy's master key, and what the consumers' proxy handler sends.
    master_key: str | None
    master_key_generated: bool
    # Whether `up` generated the artifact link signing key (in `environ`) for this run.
    signing_key_generated: bool = False
    # Keyword arguments for a configured `handler:` factory.
    handler_options: Mapping[str, str]
    # A snapshot of the environment, which the config's `os.environ/NAME` references resolve
    # from (with Gemini's key also taken from GOOGLE_API_KEY).
    environ: Mapping[str, str]
    # Providers without a key in the environment: `gateway up` emulates them.
    missing_providers: tuple[str, ...]
    proxy_host: str
    proxy_port: int
    with_kafka: bool
    # Proxy processes serving proxy_port: 1 serves the proxy in this process.
    workers: int = 1
    # How the processes this command starts (proxy workers) render their logs.
    log_json: bool = False
    # The process's one redactor, seeded with every secret these settings hold; components
    # add the keys they meet later (stored provider keys, callers' gateway keys). Everything
    # that leaves the process (logs, HTTP errors, events) passes through it.
    redactor: Redactor = field(default_factory=Redactor)

    @property
    def cluster(self) -> tuple[str, str] | None:
        """`(servers, where they were set)` of the configured cluster, or None."""
        servers = self.kafka.bootstrap_servers
        if servers is None or self.cluster_source is None:
            return None
        return servers, self.cluster_source


def build_stack_settings(
    config: Path | None,
    environ: Mapping[str, str],
    flags: Flags,
    *,
    generate_master_key: bool = False,
) -> StackSettings:
    """Read and validate the settings; raise ConfigError on any problem in the config file.

    With `generate_master_key`, a missing LITELLM_MASTER_KEY is replaced by a random key for
    this run (`gateway up` prints it), so the embedded default needs no set-up.
    """
    kafka = load_kafka_settings(config)
    changes: dict[str, Any] = {}
    if flags.bootstrap:
        cluster: tuple[str, str] | None = (flags.bootstrap, "--bootstrap")
    else:
        cluster = configured_cluster(environ, kafka.bootstrap_servers)
    changes["bootstrap_servers"] = cluster[0] if cluster else None
    redis_source = "gateway_settings.kafka"
    if redis_url := environ.get(REDIS_ENV):
        # One Redis holds the dedupe records (and, read by the proxy's settings from the
        # same environment, the provider budgets).
        changes |= {"dedupe_redis_url": redis_url, "rate_limit_redis_url": redis_url}
        redis_source = REDIS_ENV
    if flags.group:
        changes["group_id"] = flags.group
    if flags.metrics_port is not None:
        changes["metrics_port"] = flags.metrics_port
    if flags.handler:
        changes["handler"] = flags.handler
    if flags.proxy_url:
        changes["proxy"] = msgspec.structs.replace(kafka.proxy, url=flags.proxy_url)
    master_key = environ.get(MASTER_KEY_ENV) or None
    generated = master_key is None and generate_master_key
    if generated:
        master_key = "sk-gw-" + secrets.token_urlsafe(24)
    snapshot = dict(environ)
    if not snapshot.get("GEMINI_API_KEY") and snapshot.get("GOOGLE_API_KEY"):
        snapshot["GEMINI_API_KEY"] = snapshot["GOOGLE_API_KEY"]
    # Links work out of the box: every process of this run resolves the config's key reference
    # from this snapshot, so they all sign and check with one key (it dies with the run).
    signing_key_generated = generate_master_key and not snapshot.get(ARTIFACT_KEY_ENV)
    if signing_key_generated:
        snapshot[ARTIFACT_KEY_ENV] = secrets.token_urlsafe(32)
    if generate_master_key and flags.port and not snapshot.get(PUBLIC_URL_ENV):
        snapshot[PUBLIC_URL_ENV] = f"http://{flags.host}:{flags.port}"
    # A provider is emulated when neither its key nor its base is set (a base without a key
    # is a real endpoint whose key is missing: its requests then say what to set).
    missing = tuple(
        p
        for p, (key, base, _) in PROVIDER_ENV.items()
        if not snapshot.get(key) and not (p == "vertex" and snapshot.get(base))
    )
    workers = _workers(flags.workers, environ)
    redactor = Redactor(
        [
            master_key,
            snapshot.get(ARTIFACT_KEY_ENV),
            *(snapshot.get(key) for key, _, _ in PROVIDER_ENV.values()),
        ]
    )
    return StackSettings(
        config=config,
        kafka=msgspec.structs.replace(kafka, **changes),
        cluster_source=cluster[1] if cluster else None,
        broker_mode=flags.broker_mode,
        kafka_data=flags.kafka_data,
        redis_source=redis_source,
        master_key=master_key,
        master_key_generated=generated,
        signing_key_generated=signing_key_generated,
        handler_options=MappingProxyType(dict(flags.handler_options)),
        environ=MappingProxyType(snapshot),
        missing_providers=missing,
        proxy_host=flags.host,
        proxy_port=flags.port,
        with_kafka=flags.with_kafka,
        workers=workers,
        log_json=flags.log_json,
        redactor=redactor,
    )


def _workers(flag: int | None, environ: Mapping[str, str]) -> int:
    raw: object = flag if flag is not None else environ.get(WORKERS_ENV, "1")
    where = "--workers" if flag is not None else WORKERS_ENV
    try:
        workers = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{where} must be a whole number of processes, not {raw!r}") from None
    if not 1 <= workers <= _MAX_WORKERS:
        raise ConfigError(f"{where} must be between 1 and {_MAX_WORKERS}, not {workers}")
    return workers
