"""Helpers shared by the proxy tests: fake provider keys, config copies, a threaded proxy."""

from __future__ import annotations

import asyncio
import threading

from provider_setup import FAKE_KEYS, REPO_CONFIG, TEST_RESILIENCE, emulator_env, write_config

from proxy.server import ProxyServer

__all__ = [
    "FAKE_KEYS",
    "MASTER_KEY",
    "REPO_CONFIG",
    "TEST_RESILIENCE",
    "USER_ID",
    "USER_KEY",
    "ThreadedProxy",
    "emulator_env",
    "write_config",
]

MASTER_KEY = "sk-gw-test-master-key-7f3a9c"
# A user-level Anthropic key stored in the session proxy's key store.
USER_ID = "user-with-own-key"
USER_KEY = "user-level-anthropic-key-5d2e"


class ThreadedProxy:
    """A ProxyServer running in its own thread and event loop."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="test-proxy", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        await self._stop.wait()
        await self.server.stop()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("proxy did not start within 60 s")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    @property
    def url(self) -> str:
        return self.server.url
