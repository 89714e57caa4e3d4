"""Fixtures for the proxy tests: one in-process proxy per session, pointed at the emulators.

The proxy runs in a background thread with its own event loop (LiteLLM's proxy module holds
process-wide state, so one per process), with tiny backoff and timeouts so fault scenarios run
in milliseconds. Provider keys are recognisable fakes so tests can prove they never leak.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from observed_proxy import ObservedProxy, start_observed_proxy
from proxy_support import (
    MASTER_KEY,
    SeededDatabase,
    ThreadedProxy,
    emulator_env,
    seed_database,
    write_config,
)

from database import Sealer
from emulators.testing import EmulatorHandle, FalHandle
from proxy.server import ProxyServer
from proxy.settings import build_settings

# Like its cost map, LiteLLM fetches Anthropic beta-header data from the network unless told not
# to; tests never touch the network.
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")


@pytest.fixture(scope="session")
def key_database(tmp_path_factory: pytest.TempPathFactory) -> SeededDatabase:
    """An SQLite gateway database holding USER_ID, its gateway key and its Anthropic key."""
    url = f"sqlite:///{tmp_path_factory.mktemp('keys') / 'gateway.db'}"
    return asyncio.run(seed_database(url, Sealer.generate()))


@pytest.fixture(scope="session")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
    key_database: SeededDatabase,
) -> Iterator[ThreadedProxy]:
    """The gateway proxy, in-process, with the three emulators as its providers and the
    seeded gateway database."""

    def with_database(data: dict[str, Any]) -> None:
        data["gateway_settings"]["keys"] = {
            "database_url": key_database.url,
            "refresh_ms": 50,
        }

    config = write_config(tmp_path_factory.mktemp("proxy") / "litellm_config.yaml", with_database)
    env = emulator_env(anthropic_emulator, openai_emulator, gemini_emulator)
    env["GATEWAY_KEY_ENCRYPTION_KEY"] = key_database.kek
    settings = build_settings(config, env, master_key=MASTER_KEY)
    running = ThreadedProxy(ProxyServer(settings, port=0))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def client(proxy: ThreadedProxy) -> Iterator[openai.OpenAI]:
    """The official OpenAI SDK pointed at the proxy, with its own retries off."""
    with openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30
    ) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def observed(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
    fal_emulator: FalHandle,
    onnx_models: Path,
    key_database: SeededDatabase,
) -> Iterator[ObservedProxy]:
    """A proxy over the repository's config (Fal and the ONNX models included) with its
    metrics and its spans in a JSON-lines file: one per test module."""
    running = start_observed_proxy(
        tmp_path_factory.mktemp(request.module.__name__.rsplit("_", 1)[-1]),
        emulators={
            "anthropic": anthropic_emulator,
            "openai": openai_emulator,
            "gemini": gemini_emulator,
        },
        fal=fal_emulator,
        onnx_models=onnx_models,
        key_database=key_database,
    )
    yield running
    running.stop()
