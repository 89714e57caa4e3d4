"""The pieces `gateway up` starts, each with an async start()/stop().

Why it exists: `up` is an ordered list of components entered into one AsyncExitStack, so they
stop in reverse order whatever happens, and adding a component (a Kafka broker, consumers) is
one line in `proxy.cli`.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable, MutableMapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from proxy.server import ProxyServer
from proxy.settings import KeysSettings, ProxySettings, build_settings

if TYPE_CHECKING:
    from emulators import EmulatorServer

__all__ = [
    "EMULATED_KEYS",
    "PROVIDER_ENV",
    "Component",
    "EmbeddedEmulators",
    "ProxyComponent",
    "keys_line",
    "missing_providers",
    "run_components",
    "safe_url",
]

# provider -> (key env var, base env var, path the API base needs after the emulator origin)
PROVIDER_ENV: dict[str, tuple[str, str, str]] = {
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE", ""),
    "openai": ("OPENAI_API_KEY", "OPENAI_API_BASE", "/v1"),
    "gemini": ("GEMINI_API_KEY", "GEMINI_API_BASE", "/v1beta"),
}
EMULATED_KEYS = {p: f"emulated-{p}-key" for p in PROVIDER_ENV}


class Component(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def safe_url(url: str) -> str:
    """`url` as start-up lines may print it: scheme, host, port and path, nothing else.

    User names, passwords and query strings (PostgreSQL accepts `?password=`) are dropped, and
    a libpq key/value string, which is no URL, is not printed at all.
    """
    hidden = "(a connection string, not printed)"
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return hidden
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a port: the URL is malformed, so print none of it
        return hidden
    if port is not None:
        host = f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def keys_line(keys: KeysSettings) -> str:
    """The start-up line saying where provider keys come from besides the environment."""
    if keys.database_url:
        return f"keys: PostgreSQL at {safe_url(keys.database_url)}, then the environment"
    return "keys: environment only (no gateway_settings.keys.database_url)"


def missing_providers(environ: MutableMapping[str, str]) -> list[str]:
    """Providers with no key in `environ` (Gemini also accepts GOOGLE_API_KEY)."""
    if not environ.get("GEMINI_API_KEY") and environ.get("GOOGLE_API_KEY"):
        environ["GEMINI_API_KEY"] = environ["GOOGLE_API_KEY"]
    return [p for p, (key, _, _) in PROVIDER_ENV.items() if not environ.get(key)]


class EmbeddedEmulators:
    """Provider emulators for the providers that have no key, wired in through `environ`."""

    name = "emulators"

    def __init__(self, providers: Sequence[str], environ: MutableMapping[str, str]) -> None:
        self._providers = list(providers)
        self._environ = environ
        self._servers: list[EmulatorServer] = []
        self.urls: dict[str, str] = {}

    async def start(self) -> None:
        from emulators import start_emulator  # noqa: PLC0415 - only when emulating

        for provider in self._providers:
            server = await asyncio.to_thread(start_emulator, provider, 0)
            self._servers.append(server)
            key_env, base_env, suffix = PROVIDER_ENV[provider]
            self.urls[provider] = server.url
            self._environ[base_env] = server.url + suffix
            self._environ[key_env] = EMULATED_KEYS[provider]

    async def stop(self) -> None:
        while self._servers:
            server = self._servers.pop()
            await asyncio.to_thread(server.stop)


class ProxyComponent:
    """Builds the settings from the (by now prepared) environment and serves the proxy."""

    name = "proxy"

    def __init__(
        self,
        config: Path,
        environ: MutableMapping[str, str],
        *,
        host: str,
        port: int,
        master_key: str,
    ) -> None:
        self._config = config
        self._environ = environ
        self._host = host
        self._port = port
        self._master_key = master_key
        self.server: ProxyServer | None = None
        self.settings: ProxySettings | None = None

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("the proxy has not started")
        return self.server.url

    def describe(self) -> list[str]:
        """Start-up lines: where the provider keys come from."""
        if self.settings is None:
            raise RuntimeError("the proxy has not started")
        return [keys_line(self.settings.keys)]

    async def start(self) -> None:
        self.settings = settings = build_settings(
            self._config, self._environ, master_key=self._master_key
        )
        self.server = ProxyServer(settings, host=self._host, port=self._port)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


async def run_components(
    components: Sequence[Component],
    stop: asyncio.Event,
    *,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Start `components` in order, wait for `stop`, then stop them in reverse order."""
    async with AsyncExitStack() as stack:
        for component in components:
            await component.start()
            stack.push_async_callback(component.stop)
        if on_ready is not None:
            on_ready()
        await stop.wait()
