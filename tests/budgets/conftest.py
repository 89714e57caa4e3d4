"""Fixtures for the budget tests: a controllable clock for the in-process store and a
sliding-window counter (the session's Redis and a key namespace per test come from
`services.testing`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from budget_support import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


def _max_in_window(times: Sequence[float], window_s: float) -> int:
    ordered = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(ordered):
        while t - ordered[first] >= window_s:
            first += 1
        best = max(best, last - first + 1)
    return best


@pytest.fixture
def max_in_window() -> Callable[[Sequence[float], float], int]:
    """Largest number of timestamps inside any half-open window of the given length."""
    return _max_in_window
