"""Helpers shared by the proxy tests: fake provider keys, config copies, a threaded proxy."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from provider_setup import FAKE_KEYS, REPO_CONFIG, TEST_RESILIENCE, emulator_env, write_config

from database import Database, KeyRecords, Sealer
from proxy.server import ProxyServer

__all__ = [
    "FAKE_KEYS",
    "MASTER_KEY",
    "REPO_CONFIG",
    "TEST_RESILIENCE",
    "USER_ID",
    "USER_KEY",
    "SeededDatabase",
    "ThreadedProxy",
    "emulator_env",
    "seed_database",
    "write_config",
]

MASTER_KEY = "sk-gw-test-master-key-7f3a9c"
# A user with a user-level Anthropic key in the session proxy's gateway database.
USER_ID = "user-with-own-key"
USER_KEY = "user-level-anthropic-key-5d2e"


@dataclass(frozen=True, slots=True)
class SeededDatabase:
    url: str
    kek: str
    # USER_ID's gateway key, and a second user's (who has no provider keys).
    user_gateway_key: str
    other_gateway_key: str


async def seed_database(url: str, kek: str) -> SeededDatabase:
    """Migrate `url` and store USER_ID (with USER_KEY for Anthropic) and a second user."""
    database = Database(url)
    await database.start()
    try:
        records = KeyRecords(database, Sealer([kek]))
        await records.check_sealer()
        await records.create_user(USER_ID, "user")
        await records.create_user("someone-else", "user")
        await records.set_provider_key(USER_ID, "anthropic", USER_KEY)
        own = await records.issue_gateway_key(USER_ID)
        other = await records.issue_gateway_key("someone-else")
    finally:
        await database.stop()
    return SeededDatabase(url=url, kek=kek, user_gateway_key=own.key, other_gateway_key=other.key)


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
