"""Errors raised by `budgets`.

Named `Budget...` so they never shadow a provider's "429 seen" errors: these say that OUR
budget could not hand out a grant, not that a provider refused a call. Redis client errors are
translated in one place (`_redis._translate`).

    BudgetError                     retriable = False
    ├── BudgetExhausted             retriable = True   (no grant before the caller's deadline,
    │                                                   or the queue is full; carries the wait)
    ├── BudgetStoreUnavailable      retriable = True   (Redis unreachable or timed out)
    ├── BudgetStoreError            retriable = False  (Redis answered with an error)
    └── BudgetNotStarted            retriable = False  (used before start() / after stop())
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BudgetError",
    "BudgetExhausted",
    "BudgetNotStarted",
    "BudgetStoreError",
    "BudgetStoreUnavailable",
]


class BudgetError(Exception):
    """Root of every error raised by `budgets`."""

    retriable: ClassVar[bool] = False


class BudgetExhausted(BudgetError):
    """No grant for `key` in time: the expected wait (`expected_wait_s`) is longer than the
    caller's remaining deadline, or the queue is full. Coming back after the wait may succeed."""

    retriable = True

    def __init__(self, key: str, expected_wait_s: float, *, queue_full: bool = False) -> None:
        why = "the queue is full" if queue_full else "the wait exceeds the deadline"
        super().__init__(f"budget {key!r}: expected wait {expected_wait_s:.1f}s ({why})")
        self.key = key
        self.expected_wait_s = expected_wait_s
        self.queue_full = queue_full


class BudgetStoreUnavailable(BudgetError):
    """The shared budget state could not be reached in time."""

    retriable = True


class BudgetStoreError(BudgetError):
    """Redis rejected the budget's command (wrong key type, script error, auth)."""


class BudgetNotStarted(BudgetError):
    """A store was used outside its start() / stop() lifecycle."""
