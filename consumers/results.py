"""The result event of a handled request: the one place a handler's outcome becomes a result.

The request's kind (`consumers.kinds.EventKind`) decides the result types: its success result
carries the handler's payload, its failure result the first error of the chain.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from consumers.invoker import Handled
from consumers.kinds import EventKind
from schemas import Request, Result

__all__ = ["result_for"]


def result_for(
    kind: EventKind[Any, Any], event: Request, handled: Handled, started: float
) -> Result:
    """The result event of a handled request (`started`: monotonic time handling began).

    Raises `consumers.kinds.KindError` when the handler returned another kind's payload.
    """
    outcome, attempts, errors = handled
    if isinstance(outcome, msgspec.Struct):
        return kind.success(
            event, outcome, attempts=attempts, latency_ms=(time.monotonic() - started) * 1000
        )
    return kind.failure(event, errors[0], attempts=attempts)
