"""Provider API-key resolution: the end user's key, then the system key, then the environment.

Why it exists: users may bring their own provider keys, admins set one system key per provider,
and deployments fall back to environment variables. Resolution runs on every attempt (a
fallback provider needs its own key), so stored keys are cached in the process; a cache is
dropped as soon as the store's change counter moves (`ChangeWatch`: read at most once per
`refresh_s`, so other processes' changes are seen within that time and the hot path does not
touch the database). Every key read is added to the process's redactor before it is used, so
no error body, event or log line can carry it.

The user is the one behind the caller's gateway key (see `proxy.auth`), never a field of the
request: a user's key is used for that user's requests only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from core.redact import Redactor
from proxy.errors import MissingProviderKeyError
from proxy.routing import Deployment

__all__ = [
    "ENV_FALLBACKS",
    "KEY_PROVIDERS",
    "ChangeWatch",
    "KeyResolver",
    "KeySource",
    "key_provider",
]

# The providers a user or admin may store a key for.
KEY_PROVIDERS = ("anthropic", "openai", "gemini", "vertex", "fal")
# LiteLLM's provider names (a model's prefix) for the providers above.
_LITELLM_NAMES = {"vertex_ai": "vertex", "vertex_ai_beta": "vertex", "fal_ai": "fal"}
# Environment variables read, in order, after the one a deployment's config names. Vertex has
# none: without a stored service account its plugin uses Google's application credentials.
ENV_FALLBACKS: Mapping[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "fal": ("FAL_KEY",),
}
_HINTS = {
    "gemini": "GEMINI_API_KEY or GOOGLE_API_KEY",
    "vertex": "GOOGLE_CLOUD_PROJECT and GOOGLE_APPLICATION_CREDENTIALS",
}
# Providers that run inside the gateway (self-hosted models): there is no key to resolve.
KEYLESS_PROVIDERS = frozenset({"onnx"})
# A bound on cached entries; only authenticated users reach the cache, so this is a safety net.
_MAX_CACHED = 50_000


def key_provider(litellm_provider: str) -> str:
    """The key store's name for a LiteLLM provider: `vertex_ai` -> `vertex`."""
    return _LITELLM_NAMES.get(litellm_provider, litellm_provider)


class KeySource(Protocol):
    """Where user- and system-level keys live (the gateway database implements it)."""

    async def version(self) -> int:
        """A counter that grows with every change to stored keys or identities."""
        ...

    async def provider_key(self, user_id: str | None, provider: str) -> str | None:
        """The key `user_id` stored for `provider` (`user_id=None`: the system key)."""
        ...


class ChangeWatch:
    """Tells caches when the store changed: local changes at once (`changed()`), other
    processes' when a read of the change counter, at most one per `refresh_s`, sees it move."""

    def __init__(self, source: KeySource, *, refresh_s: float = 0.5) -> None:
        self._source = source
        self._refresh_s = refresh_s
        self._version: int | None = None
        self._next_read = 0.0
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def changed(self) -> None:
        """This process changed the store: drop every cache now."""
        for listener in self._listeners:
            listener()

    async def check(self) -> None:
        """Drop the caches if another process changed the store since the last read."""
        if time.monotonic() < self._next_read:
            return
        async with self._lock:
            if time.monotonic() < self._next_read:
                return  # another request read it while this one waited
            version = await self._source.version()
            if version != self._version:
                self._version = version
                self.changed()
            self._next_read = time.monotonic() + self._refresh_s


class KeyResolver:
    """Resolve the key for one attempt: user level, then system level, then environment."""

    def __init__(
        self,
        env_keys: Mapping[str, str],
        source: KeySource | None = None,
        *,
        watch: ChangeWatch | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self._env = dict(env_keys)
        self._source = source
        self._watch = watch if watch is not None or source is None else ChangeWatch(source)
        self._redactor = redactor if redactor is not None else Redactor()
        for value in self._env.values():
            self._redactor.add(value)
        self._cache: dict[tuple[str, str | None], str | None] = {}
        if self._watch is not None:
            self._watch.subscribe(self._cache.clear)

    async def _stored(self, provider: str, user_id: str | None) -> str | None:
        if self._source is None:
            return None
        slot = (provider, user_id)
        if slot in self._cache:
            return self._cache[slot]
        value = await self._source.provider_key(user_id, provider)
        self._redactor.add(value)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[slot] = value
        return value

    async def resolve(self, deployment: Deployment, user_id: str | None) -> str:
        provider = key_provider(deployment.provider)
        if provider in KEYLESS_PROVIDERS:
            return ""
        if self._watch is not None:
            await self._watch.check()
        if user_id is not None and (key := await self._stored(provider, user_id)):
            return key
        if key := await self._stored(provider, None):
            return key
        names = ENV_FALLBACKS.get(provider, ())
        for name in (deployment.key_env, *names) if deployment.key_env else names:
            if name and (key := self._env.get(name)):
                return key
        if deployment.literal_key:
            self._redactor.add(deployment.literal_key)
            return deployment.literal_key
        hint = _HINTS.get(provider) or deployment.key_env or f"{provider.upper()}_API_KEY"
        raise MissingProviderKeyError(
            f"no API key for provider '{provider}': set {hint}, or store a user or system key "
            "(`gateway keys set`)",
            provider=provider,
        )
