"""Waiting for a provider's long job (a LoRA training, a video) through the proxy's job routes.

Why one loop: both kinds create a job once, then only look it up until it ends, publishing
progress in between; both must stop at the event's deadline (or the handler's longest wait)
and then cancel the job, so no provider keeps working (and billing) for an answer nobody
reads. A look-up that fails transiently is not repeated: the next scheduled look-up asks
again, and only `max_failures` failed look-ups in a row give up (with the last error, whose
`retriable` lets the runtime deliver the event again; the job id is remembered, so that
delivery resumes the same job).

`run_job` is that loop, once: a kind supplies how its job starts, is looked up, is cancelled
and is read once it ended; what it remembers, forgets and raises is decided here.

`JobMemory` is how a redelivered event finds its job: event id -> job, in this process's
memory only. A delivery to another process, or after a restart, cannot know the job and
creates a second one (the first still ends, and is billed, at the provider).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated, Generic, Protocol, TypeVar

import msgspec
import structlog

from consumers.errors import DeadlineExceeded, HandlerError
from core.http import seconds_until
from pipelines._errors import JobCancelled, JobFailed, JobTimedOut
from pipelines._media import MediaOptions
from schemas import Request

__all__ = [
    "CANCEL_S",
    "JobMemory",
    "JobOptions",
    "StartedJob",
    "poll_until",
    "run_job",
    "wait_ends",
]

# How long a cancel after the deadline may take (the event's own budget is spent by then).
CANCEL_S = 15.0

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


class JobOptions(MediaOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A job kind's handler options: `MediaOptions` plus how its jobs are waited for."""

    # Seconds between two look-ups of an unfinished job (each asks the provider once).
    poll_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # The longest wait for an event without a deadline; then the job is cancelled.
    max_wait_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    # Failed look-ups in a row before the delivery gives up (it resumes the job when retried).
    max_poll_failures: Annotated[int, msgspec.Meta(ge=1)] = 10


class StartedJob(Protocol):
    """What starting a job gave: at least the provider's job id."""

    @property
    def job_id(self) -> str: ...


S = TypeVar("S", bound=StartedJob)
J = TypeVar("J")
R = TypeVar("R")


async def run_job(
    event: Request,
    memory: JobMemory[S],
    wait: JobOptions,
    *,
    start: Callable[[], Awaitable[S]],
    look: Callable[[S], Awaitable[J | None]],
    cancel: Callable[[S], Awaitable[object]],
    finish: Callable[[S, J], Awaitable[R]],
    timed_out: str,
) -> R:
    """`event`'s job run to its end: resumed from `memory` (or `start()`ed and remembered),
    `look()`ed up until it ends, then `finish(job, ended)` (what the kind answers). A job
    that failed or was cancelled at the provider is forgotten and its error raised; once the
    wait ends first, the job is `cancel()`led, forgotten, and JobTimedOut raised with
    `timed_out` (`{job_id}` names the job). Any other error keeps the job for a redelivery.
    """
    ends = wait_ends(event, wait.max_wait_s, started=time.monotonic())
    remembered = memory.get(event.event_id)
    if remembered is None:
        remembered = await start()
        memory.put(event.event_id, remembered)
    job = remembered
    try:
        ended = await poll_until(
            lambda: look(job),
            ends=ends,
            interval_s=wait.poll_interval_s,
            max_failures=wait.max_poll_failures,
            job_id=job.job_id,
        )
    except (JobFailed, JobCancelled):
        memory.forget(event.event_id)  # ended for good: no delivery resumes it
        raise
    if ended is None:
        await _cancel_quietly(cancel, job)
        memory.forget(event.event_id)
        raise JobTimedOut(timed_out.format(job_id=job.job_id))
    # Forgotten only once finished: a delivery retried after a failed finish (a download,
    # say) resumes the ended job rather than starting another.
    answer = await finish(job, ended)
    memory.forget(event.event_id)
    return answer


async def _cancel_quietly(cancel: Callable[[S], Awaitable[object]], job: S) -> None:
    try:
        await cancel(job)
    except HandlerError as exc:
        # The job may go on at the provider; the failure result says the deadline passed.
        _log.warning("pipeline.cancel_failed", job=job.job_id, error=type(exc).__name__)
