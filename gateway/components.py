"""The pieces a `gateway` command starts, each with an async start()/stop().

Why it exists: a command is an ordered list of components entered into one AsyncExitStack, so
they stop in reverse order whatever happens, and adding a component (a Kafka broker,
consumers) is one line in `gateway.stack`. Each component takes the command's StackSettings;
what one learns while starting (an emulator's URL, the proxy's port) reaches the next through
its attributes, never through the environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Protocol

from core.config import ConfigError
from gateway.settings import PROVIDER_ENV, REDIS_ENV, VERTEX_ENV, StackSettings

if TYPE_CHECKING:
    from emulators import EmulatorServer
    from proxy.server import ProxyServer
    from proxy.settings import KeysSettings, ProxySettings

__all__ = [
    "EMULATED_KEYS",
    "EMULATED_VERTEX_LOCATION",
    "EMULATED_VERTEX_PROJECT",
    "Component",
    "EmbeddedEmulators",
    "ProxyComponent",
    "keys_line",
    "run_components",
    "safe_url",
]

EMULATED_KEYS: Mapping[str, str] = {p: f"emulated-{p}-key" for p in PROVIDER_ENV}
# The project and location the embedded Vertex emulator's throw-away service account is for.
EMULATED_VERTEX_PROJECT = "emulated-project"
EMULATED_VERTEX_LOCATION = "us-central1"


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
    url = keys.database_url
    if url and url.startswith("sqlite:///"):
        where = f"SQLite at {url[len('sqlite:///') :]}"
        return f"keys: users and provider keys in {where}, then the environment"
    if url:
        where = f"PostgreSQL at {safe_url(url)}"
        return f"keys: users and provider keys in {where}, then the environment"
    return "keys: environment only (no gateway_settings.keys.database_url)"


def store_line(what: str, url: str | None, on_redis: bool, source: str) -> str:
    """The start-up line saying where a shared store (dedupe records, budgets) lives."""
    if on_redis and url is not None:
        return f"{what}: Redis at {safe_url(url)} ({source})"
    why = "no Redis configured" if url is None else f"Redis at {safe_url(url)} unreachable"
    return f"{what}: in-process ({why}; set {REDIS_ENV} to share it between processes)"


class EmbeddedEmulators:
    """Provider emulators for the providers that have no key in the environment."""

    name = "emulators"

    def __init__(self, settings: StackSettings) -> None:
        self._providers = list(settings.missing_providers)
        self._servers: list[EmulatorServer] = []
        self.urls: dict[str, str] = {}
        # The API base and key variables the config's `os.environ/` references read, pointed
        # at the emulators; the proxy resolves its routing table over them.
        self.environ: dict[str, str] = {}
        # Holds the emulated Vertex service-account file while the emulators run.
        self._folder: str | None = None

    def describe(self) -> list[str]:
        """Start-up lines about what the emulated providers were given (never a secret)."""
        if "vertex" not in self.urls:
            return []
        return [
            f"  vertex: a throw-away service account for project {EMULATED_VERTEX_PROJECT}, "
            f"location {EMULATED_VERTEX_LOCATION}, its tokens minted by the emulator"
        ]

    async def start(self) -> None:
        from emulators import start_emulator  # noqa: PLC0415 - only when emulating

        for provider in self._providers:
            server = await asyncio.to_thread(start_emulator, provider, 0)
            self._servers.append(server)
            key_env, base_env, suffix = PROVIDER_ENV[provider]
            self.urls[provider] = server.url
            self.environ[base_env] = server.url + suffix
            if provider == "vertex":
                self.environ[key_env] = await asyncio.to_thread(self._vertex_account, server.url)
                project_env, location_env = VERTEX_ENV
                self.environ[project_env] = EMULATED_VERTEX_PROJECT
                self.environ[location_env] = EMULATED_VERTEX_LOCATION
            else:
                self.environ[key_env] = EMULATED_KEYS[provider]

    def _vertex_account(self, url: str) -> str:
        """Have the emulator generate a service account (so it verifies the signatures of its
        assertions) and write it to an owner-only file; the file's path."""
        import httpx  # noqa: PLC0415 - only when emulating

        response = httpx.post(
            f"{url}/_emulator/vertex/service-account",
            json={"project": EMULATED_VERTEX_PROJECT},
            timeout=10.0,
        )
        response.raise_for_status()
        self._folder = tempfile.mkdtemp(prefix="gateway-vertex-")
        path = os.path.join(self._folder, "service-account.json")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(response.json(), out)
        return path

    async def stop(self) -> None:
        while self._servers:
            server = self._servers.pop()
            await asyncio.to_thread(server.stop)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


class ProxyComponent:
    """Builds the proxy's settings (over the emulators, where any run) and serves the proxy."""

    name = "proxy"

    def __init__(self, settings: StackSettings, emulators: EmbeddedEmulators) -> None:
        self._settings = settings
        self._emulators = emulators
        self.server: ProxyServer | None = None
        self.proxy_settings: ProxySettings | None = None

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("the proxy has not started")
        return self.server.url

    def describe(self) -> list[str]:
        """Start-up lines: where the provider keys come from, and what serves the proxy."""
        if self.proxy_settings is None:
            raise RuntimeError("the proxy has not started")
        port = self.server.port if self.server is not None else self._settings.proxy_port
        budgets = self.server.budgets if self.server is not None else None
        source = REDIS_ENV if self._settings.environ.get(REDIS_ENV) else "gateway_settings.budgets"
        on_redis = budgets is not None and budgets.store_kind == "redis"
        return [
            keys_line(self.proxy_settings.keys),
            store_line("budgets", self.proxy_settings.budgets.redis_url, on_redis, source),
            f"proxy: 1 worker (this process) serves port {port} (--workers N for more)",
        ]

    async def start(self) -> None:
        from proxy.server import ProxyServer  # noqa: PLC0415 - imports the proxy stack
        from proxy.settings import build_settings  # noqa: PLC0415

        s = self._settings
        if s.config is None:
            raise ConfigError("the proxy needs a config file (--config)")
        environ = {**s.environ, **self._emulators.environ}
        self.proxy_settings = build_settings(
            s.config, environ, master_key=s.master_key, redactor=s.redactor
        )
        self.server = ProxyServer(
            self.proxy_settings, host=s.proxy_host, port=s.proxy_port, redactor=s.redactor
        )
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
