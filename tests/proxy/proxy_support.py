"""Helpers shared by the proxy tests: fake provider keys, config copies, a threaded proxy."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import yaml

from emulators.testing import EmulatorHandle
from proxy.server import ProxyServer

REPO_CONFIG = Path(__file__).resolve().parents[2] / "litellm_config.yaml"
MASTER_KEY = "sk-gw-test-master-key-7f3a9c"
FAKE_KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-fakeanthropickey-0123456789",
    "OPENAI_API_KEY": "sk-fakeopenaikey-0123456789abcdef",
    "GEMINI_API_KEY": "AIzaFakeGeminiKey0123456789abcdefgh",
}
# A user-level Anthropic key stored in the session proxy's key store.
USER_ID = "user-with-own-key"
USER_KEY = "user-level-anthropic-key-5d2e"
TEST_RESILIENCE = {
    "attempts": 3,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "request_timeout_s": 1.5,
    "max_retry_after_s": 3,
}


def write_config(path: Path, edit: Any = None) -> Path:
    """Copy the repository's litellm_config.yaml to `path` with test resilience settings."""
    data = yaml.safe_load(REPO_CONFIG.read_text())
    data["gateway_settings"]["resilience"] = dict(TEST_RESILIENCE)
    if edit is not None:
        edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def emulator_env(
    anthropic: EmulatorHandle, openai_: EmulatorHandle, gemini: EmulatorHandle
) -> dict[str, str]:
    return {
        **FAKE_KEYS,
        "ANTHROPIC_API_BASE": anthropic.url,
        "OPENAI_API_BASE": f"{openai_.url}/v1",
        "GEMINI_API_BASE": f"{gemini.url}/v1beta",
    }


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
