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

from core.config import ConfigError, load_section, read_config_file
from core.redact import Redactor
from proxy.routing import RoutingTable

__all__ = [
    "KeysSettings",
    "ProxySettings",
    "ResilienceSettings",
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
    """`gateway_settings.keys`: where user- and system-level provider keys live."""

    # PostgreSQL URL of the key store; without it only environment keys are used.
    database_url: str | None = None
    table: str = "provider_api_keys"
    cache_ttl_s: float = 30.0


class ProxySettings(msgspec.Struct, frozen=True, kw_only=True):
    config_path: str
    routing: RoutingTable
    resilience: ResilienceSettings
    keys: KeysSettings
    master_key: str
    # Values of the env vars named by `api_key: os.environ/NAME`, resolved once.
    env_keys: Mapping[str, str]


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
    env_keys = {name: environ[name] for name in sorted(routing.key_envs()) if environ.get(name)}
    if redactor is not None:
        for value in (key, *env_keys.values()):
            redactor.add(value)
    try:
        resilience = load_section(data, "resilience", ResilienceSettings)
        keys = load_section(data, "keys", KeysSettings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if keys.database_url:
        keys = msgspec.structs.replace(keys, database_url=_resolve_env(keys.database_url, environ))
    return ProxySettings(
        config_path=str(Path(config_path).resolve()),
        routing=routing,
        resilience=resilience,
        keys=keys,
        master_key=key,
        env_keys=env_keys,
    )


def _resolve_env(value: str, environ: Mapping[str, str]) -> str | None:
    prefix = "os.environ/"
    return environ.get(value[len(prefix) :]) if value.startswith(prefix) else value
