"""Fixtures for the proxy tests: one in-process proxy per session, pointed at the emulators.

The proxy runs in a background thread with its own event loop (LiteLLM's proxy module holds
process-wide state, so one per process), with tiny backoff and timeouts so fault scenarios run
in milliseconds. Provider keys are recognisable fakes so tests can prove they never leak.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from emulators.testing import EmulatorHandle
from proxy.server import ProxyServer
from proxy.settings import build_settings

# Like the cost map, LiteLLM fetches Anthropic beta-header data from the network unless told not to.
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

REPO_CONFIG = Path(__file__).resolve().parents[2] / "litellm_config.yaml"
MASTER_KEY = "sk-gw-test-master-key-7f3a9c"
FAKE_KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-fakeanthropickey-0123456789",
    "OPENAI_API_KEY": "sk-fakeopenaikey-0123456789abcdef",
    "GEMINI_API_KEY": "AIzaFakeGeminiKey0123456789abcdefgh",
}
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


@pytest.fixture(scope="session")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
) -> Iterator[ThreadedProxy]:
    """The gateway proxy, in-process, with the three emulators as its providers."""
    config = write_config(tmp_path_factory.mktemp("proxy") / "litellm_config.yaml")
    env = emulator_env(anthropic_emulator, openai_emulator, gemini_emulator)
    settings = build_settings(config, env, master_key=MASTER_KEY)
    running = ThreadedProxy(ProxyServer(settings, port=0))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def emulators(
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
) -> Iterator[dict[str, EmulatorHandle]]:
    """The three emulators by provider name, reset before and after the test."""
    handles = {
        "anthropic": anthropic_emulator,
        "openai": openai_emulator,
        "gemini": gemini_emulator,
    }
    for handle in handles.values():
        handle.reset()
    yield handles
    for handle in handles.values():
        handle.reset()


@pytest.fixture
def client(proxy: ThreadedProxy) -> Iterator[openai.OpenAI]:
    """The official OpenAI SDK pointed at the proxy, with its own retries off."""
    with openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30
    ) as sdk:
        yield sdk


# LiteLLM's streaming code builds a pydantic adapter for one of its own TypedDicts on first use,
# which warns (a UserWarning inside LiteLLM, not in our code); pytest turns warnings into
# errors, so it would fail the first streamed request.
_LITELLM_READONLY_WARNING = "ignore:.*using the `ReadOnly` qualifier:UserWarning"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/proxy/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.filterwarnings(_LITELLM_READONLY_WARNING))
