"""Fixtures for the shared-state building blocks of the consumers: a controllable clock for the
in-memory backends (the session's Redis and a key namespace per test come from
`services.testing`)."""

from __future__ import annotations

import pytest


class FakeClock:
    """A monotonic clock that only moves when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
