"""Waiting for a provider's long job (a LoRA training, a video) through the proxy's job routes.

Why one loop: both kinds create a job once, then only look it up until it ends, publishing
progress in between; both must stop at the event's deadline (or the handler's longest wait)
and then cancel the job, so no provider keeps working (and billing) for an answer nobody
reads. A look-up that fails transiently is not repeated: the next scheduled look-up asks
again, and only `max_failures` failed look-ups in a row give up (with the last error, whose
`retriable` lets the runtime deliver the event again; the job id is remembered, so that
delivery resumes the same job).

`JobMemory` is how a redelivered event finds its job: event id -> job, in this process's
memory only. A delivery to another process, or after a restart, cannot know the job and
creates a second one (the first still ends, and is billed, at the provider).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

from consumers.errors import DeadlineExceeded
from core.http import seconds_until
from schemas import Request

__all__ = ["JobMemory", "poll_until", "wait_ends"]

T = TypeVar("T")
_log = structlog.get_logger("pipelines.jobs")


class JobMemory(Generic[T]):
    """The newest `size` events' jobs, by event id (what a redelivery resumes)."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._jobs: OrderedDict[str, T] = OrderedDict()

    def get(self, event_id: str) -> T | None:
        return self._jobs.get(event_id)

    def put(self, event_id: str, job: T) -> None:
        self._jobs[event_id] = job
        self._jobs.move_to_end(event_id)
        while len(self._jobs) > self._size:
            self._jobs.popitem(last=False)

    def forget(self, event_id: str) -> None:
        self._jobs.pop(event_id, None)


def wait_ends(event: Request, max_wait_s: float, *, started: float) -> float:
    """The monotonic time the wait for `event`'s job stops: its deadline, at most
    `max_wait_s` after `started`."""
    ends = started + max_wait_s
    if event.deadline is not None:
        ends = min(ends, time.monotonic() + seconds_until(event.deadline))
    return ends


async def poll_until(
    look: Callable[[], Awaitable[T | None]],
    *,
    ends: float,
    interval_s: float,
    max_failures: int,
    job_id: str,
) -> T | None:
    """`look()` every `interval_s` until it returns a value (the job ended), or None once
    `ends` passes. A retriable failure waits for the next look-up; the `max_failures`-th in a
    row, or any other failure, is raised."""
    failures = 0
    while True:
        if time.monotonic() >= ends:
            return None
        try:
            found = await look()
        except DeadlineExceeded:
            return None  # the deadline passed during the look-up
        except Exception as exc:
            if not getattr(exc, "retriable", False):
                raise
            failures += 1
            _log.warning(
                "pipeline.job_lookup_failed",
                job=job_id,
                error=type(exc).__name__,
                failures=failures,
            )
            if failures >= max_failures:
                raise
        else:
            failures = 0
            if found is not None:
                return found
        await asyncio.sleep(max(0.0, min(interval_s, ends - time.monotonic())))
