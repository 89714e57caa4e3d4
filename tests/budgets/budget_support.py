"""Helpers shared by the budget tests."""

from __future__ import annotations

from budgets import BucketParams, Limit

__all__ = ["FakeClock", "params"]


class FakeClock:
    """A monotonic clock that only moves when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def params(lease_ttl_s: float = 60.0, **limit: float) -> BucketParams:
    """The bucket numbers of a limit on provider `p` with the given fields."""
    return Limit(provider="p", **limit).params(lease_ttl_s)  # type: ignore[arg-type]
