"""pytest fixtures for the provider emulators (loaded by tests/conftest.py as a plugin).

Why session scope: starting an emulator costs a thread and a socket, so each provider runs
once per test session; tests isolate themselves through the handle's ``reset()`` (or the
``emulators`` fixture) and through unique prompts, since fault counters are keyed by
conversation content.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulators import EmulatorServer, start_emulator

__all__ = [
    "EmulatorHandle",
    "anthropic_emulator",
    "emulators",
    "gemini_emulator",
    "openai_emulator",
]


class EmulatorHandle:
    """A running emulator plus sync helpers over its ``/_emulator`` control API."""

    def __init__(self, name: str, server: EmulatorServer) -> None:
        self.name = name
        self.server = server
        self.url = server.url
        self._control = httpx.Client(base_url=f"{server.url}/_emulator", timeout=5.0)

    def _post(self, path: str, body: dict[str, Any] | None = None) -> None:
        self._control.post(path, json=body or {}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._control.get("/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def set_fault(self, spec: str, count: int | None = None) -> None:
        """Fail the next ``count`` requests (all, when None) with ``spec``."""
        self._post("/faults", {"spec": spec, "count": count})

    def clear_faults(self) -> None:
        self._control.delete("/faults").raise_for_status()

    def configure(self, **settings: Any) -> None:
        """Change live settings: rate_limit_rps, rate_limit_burst, allowed_keys, hang_seconds."""
        self._post("/config", settings)

    def reset(self) -> None:
        """Forget faults, counters, statistics and configuration changes."""
        self._post("/reset")

    def close(self) -> None:
        self._control.close()
        self.server.stop()


def _handle(name: str) -> Iterator[EmulatorHandle]:
    handle = EmulatorHandle(name, start_emulator(name))
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(scope="session")
def anthropic_emulator() -> Iterator[EmulatorHandle]:
    """The Anthropic Messages emulator, shared by the session."""
    yield from _handle("anthropic")


@pytest.fixture(scope="session")
def openai_emulator() -> Iterator[EmulatorHandle]:
    """The OpenAI Chat Completions emulator, shared by the session."""
    yield from _handle("openai")


@pytest.fixture(scope="session")
def gemini_emulator() -> Iterator[EmulatorHandle]:
    """The Gemini generateContent emulator, shared by the session."""
    yield from _handle("gemini")


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
