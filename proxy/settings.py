"""The proxy's typed settings, built once at start-up from litellm_config.yaml and the env.

Why it exists: nothing in the request path may read environment variables or the config file;
everything it needs (routing table, retry policy, master key, env-level provider keys) is
resolved here, validated, and passed in. Given the process's redactor, the keys read here are
added to it the moment they are read (`ProxyServer` adds them to its own in any case).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from artifacts.settings import ArtifactSettings, load_artifact_settings
from budgets import Limit
from core.config import GATEWAY_SECTION, ConfigError, load_section, read_config_file
from core.redact import Redactor
from proxy.accounting import SEED_PRICES, TokenPrice
from proxy.image_urls import ImageUrlSettings
from proxy.keys import ENV_FALLBACKS
from proxy.routing import RoutingTable

__all__ = [
    "REDIS_ENV",
    "BudgetSettings",
    "KeysSettings",
    "LimitsSettings",
    "MetricsSettings",
    "ProxySettings",
    "ResilienceSettings",
    "TracingSettings",
    "build_settings",
]


class ResilienceSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`gateway_settings.resilience`: the retry and fallback policy."""

    # Attempts per provider, the first one included.
    attempts: int = 3
    # Delay before retry n (n >= 1) is backoff_base_s * 2**(n-1), capped at backoff_max_s.
    backoff_base_s: float = 1.0
    backoff_max_s: float = 10.0
    # Deadline of one attempt against one provider.
    request_timeout_s: float = 60.0
    # A Retry-After longer than this means "this provider is out for a while": fall back.
    max_retry_after_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.backoff_base_s, self.backoff_max_s, self.max_retry_after_s) < 0:
            raise ValueError("backoff and retry-after limits must not be negative")
        if self.request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be positive")


class KeysSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`gateway_settings.keys`: the gateway database holding identities and provider keys."""

    # postgresql://... or sqlite:///PATH (or `os.environ/NAME`); unset: the SQLite file below.
    database_url: str | None = None
    # The embedded default's SQLite file, relative to the config file; null with no
    # database_url: no database (the master key and environment keys only).
    sqlite_path: str | None = None
    # How long another process's change (a revoked key, a new provider key) may go unseen:
    # the change counter is read at most once per this many milliseconds.
    refresh_ms: int = 500
    # The variable holding the key-encryption keys, comma-separated, the sealing key first.
    encryption_keys_env: str = "GATEWAY_KEY_ENCRYPTION_KEY"

    def __post_init__(self) -> None:
        if self.refresh_ms < 0:
            raise ValueError("refresh_ms must not be negative")


class MetricsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`gateway_settings.metrics`: the proxy's Prometheus endpoint, GET /metrics."""

    # master_key: scraping needs `Authorization: Bearer <master key>`; none: open.
    auth: str = "master_key"
    # PROMETHEUS_MULTIPROC_DIR, read at start-up: several worker processes share the numbers.
    multiprocess_dir: str | None = None

    def __post_init__(self) -> None:
        if self.auth not in ("none", "master_key"):
            raise ValueError("auth must be 'none' or 'master_key'")


class TracingSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`gateway_settings.tracing`: OpenTelemetry spans of the proxy (a server span per request,
    a client span per provider attempt), continuing the caller's traceparent."""

    # none: no spans at all; jsonl: finished spans appended, one JSON object a line, to `path`.
    exporter: str = "none"
    path: str | None = None
    service_name: str = "ai-gateway-proxy"

    def __post_init__(self) -> None:
        if self.exporter not in ("none", "jsonl"):
            raise ValueError("exporter must be 'none' or 'jsonl'")
        if self.exporter == "jsonl" and not self.path:
            raise ValueError("exporter jsonl needs a path")


class LimitsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`gateway_settings.limits`: request sizes the gateway's own routes accept (a larger one
    is a 413 before the body has been read whole), and how many calls one proxy process keeps
    open to the providers it calls directly."""

    # JSON bodies (chat, embeddings, image generation, fine-tuning jobs). Images travel inside
    # chat requests as base64 data URLs (4/3 of their size): 32 MiB holds a conversation with
    # several photos at providers' per-image limits (Anthropic 5 MB, Gemini 7 MB).
    max_body_bytes: int = 32 * 1024 * 1024
    # Multipart forms (image edits, videos, file uploads): Gemini edits take 14 images of
    # 7 MB each and training archives may be 100 MB (the database's file limit).
    max_form_bytes: int = 128 * 1024 * 1024
    # Connections (so calls in flight: HTTP/1.1) one proxy process holds to each provider base
    # URL on its direct path (OpenAI, Anthropic, Gemini); calls beyond wait for one to free.
    # Why this many: a model answers in seconds, so calls in flight are req/s x latency: 64
    # capped a worker at 64 req/s against a model taking 1 s. Budgets (`concurrency`) are the
    # place to limit what a provider gets.
    max_upstream_connections: int = 512

    def __post_init__(self) -> None:
        if min(self.max_body_bytes, self.max_form_bytes, self.max_upstream_connections) < 1:
            raise ValueError(
                "max_body_bytes, max_form_bytes and max_upstream_connections must be positive"
            )


# The variable naming the Redis that holds the budgets (the consumers' too), read once here.
REDIS_ENV = "REDIS_URL"


class BudgetSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`gateway_settings.budgets`: per-provider limits held for every caller (`budgets`)."""

    # Shared by every proxy process and replica; REDIS_URL overrides it; unreachable or null:
    # each process holds the budgets for itself.
    redis_url: str | None = "redis://127.0.0.1:6379/0"
    namespace: str = "ai-gateway"
    # How long a caller without x-gateway-timeout-ms may wait in a budget's queue.
    max_queue_wait_s: float = 30.0
    # Callers waiting per budget and process; one more gets a 429 at once.
    queue_capacity: int = 1000
    limits: list[Limit] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_queue_wait_s < 0:
            raise ValueError("max_queue_wait_s must not be negative")
        if self.queue_capacity < 1:
            raise ValueError("queue_capacity must be at least 1")
        names = [limit.name for limit in self.limits]
        if len(names) != len(set(names)):
            raise ValueError("two limits name the same provider, model and task")


class ProxySettings(msgspec.Struct, frozen=True, kw_only=True):
    config_path: str
    routing: RoutingTable
    resilience: ResilienceSettings
    keys: KeysSettings
    master_key: str
    # Values of the env vars named by `api_key: os.environ/NAME` (and the providers' usual
    # variables, e.g. GOOGLE_API_KEY), resolved once.
    env_keys: Mapping[str, str]
    # The key-encryption keys (sealing key first); empty: provider keys cannot be stored.
    encryption_keys: tuple[str, ...] = ()
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    budgets: BudgetSettings = msgspec.field(default_factory=BudgetSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    tracing: TracingSettings = msgspec.field(default_factory=TracingSettings)
    # Per model (as in model_list): prices for what LiteLLM's cost map lacks.
    prices: Mapping[str, TokenPrice] = msgspec.field(default_factory=lambda: dict(SEED_PRICES))
    # gateway_settings.artifacts, secrets resolved: the store the signed links are served from.
    artifacts: ArtifactSettings = msgspec.field(default_factory=ArtifactSettings)
    # gateway_settings.image_urls: how chat requests' http(s) images are fetched.
    image_urls: ImageUrlSettings = msgspec.field(default_factory=ImageUrlSettings)


def build_settings(
    config_path: str | Path,
    environ: Mapping[str, str],
    *,
    master_key: str | None = None,
    redactor: Redactor | None = None,
) -> ProxySettings:
    """Read and validate everything the proxy needs; raise ConfigError on any problem."""
    data = read_config_file(config_path)
    routing = RoutingTable.from_config(data, environ)
    key = master_key or environ.get("LITELLM_MASTER_KEY")
    if not key:
        raise ConfigError("LITELLM_MASTER_KEY is not set and no master key was given")
    names = routing.key_envs() | {n for names in ENV_FALLBACKS.values() for n in names}
    env_keys = {name: environ[name] for name in sorted(names) if environ.get(name)}
    try:
        resilience = load_section(data, "resilience", ResilienceSettings)
        keys = load_section(data, "keys", KeysSettings)
        limits = load_section(data, "limits", LimitsSettings)
        budgets = load_section(data, "budgets", BudgetSettings)
        metrics = load_section(data, "metrics", MetricsSettings)
        tracing = load_section(data, "tracing", TracingSettings)
        image_urls = load_section(data, "image_urls", ImageUrlSettings)
        prices = _prices(data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    artifacts = load_artifact_settings(config_path, environ=environ)
    keys = msgspec.structs.replace(keys, database_url=_database_url(keys, config_path, environ))
    raw_keks = environ.get(keys.encryption_keys_env, "")
    encryption_keys = tuple(k.strip() for k in raw_keks.split(",") if k.strip())
    if redactor is not None:
        for value in (key, *env_keys.values(), *encryption_keys, *_artifact_secrets(artifacts)):
            redactor.add(value)
    return ProxySettings(
        config_path=str(Path(config_path).resolve()),
        routing=routing,
        resilience=resilience,
        keys=keys,
        master_key=key,
        env_keys=env_keys,
        encryption_keys=encryption_keys,
        limits=limits,
        budgets=msgspec.structs.replace(
            budgets, redis_url=environ.get(REDIS_ENV) or budgets.redis_url
        ),
        metrics=msgspec.structs.replace(
            metrics,
            multiprocess_dir=environ.get("PROMETHEUS_MULTIPROC_DIR") or metrics.multiprocess_dir,
        ),
        tracing=_tracing(tracing, config_path),
        prices=prices,
        artifacts=artifacts,
        image_urls=image_urls,
    )


def _artifact_secrets(artifacts: ArtifactSettings) -> list[str]:
    s3 = artifacts.s3
    found = [artifacts.signing_key, None if s3 is None else s3.secret_access_key]
    return [value for value in found if value]


def _prices(data: dict[str, object]) -> dict[str, TokenPrice]:
    section = data.get(GATEWAY_SECTION)
    if not isinstance(section, dict) or "prices" not in section:
        return dict(SEED_PRICES)
    return load_section(data, "prices", dict[str, TokenPrice])


def _tracing(tracing: TracingSettings, config_path: str | Path) -> TracingSettings:
    if tracing.path is None or Path(tracing.path).expanduser().is_absolute():
        return tracing
    path = Path(config_path).resolve().parent / tracing.path
    return msgspec.structs.replace(tracing, path=str(path))


def _database_url(
    keys: KeysSettings, config_path: str | Path, environ: Mapping[str, str]
) -> str | None:
    url = _resolve_env(keys.database_url, environ) if keys.database_url else None
    if url:
        return url
    if keys.sqlite_path is None:
        return None
    path = Path(keys.sqlite_path).expanduser()
    if not path.is_absolute():
        path = Path(config_path).resolve().parent / path
    return f"sqlite:///{path}"


def _resolve_env(value: str, environ: Mapping[str, str]) -> str | None:
    prefix = "os.environ/"
    return environ.get(value[len(prefix) :]) if value.startswith(prefix) else value
