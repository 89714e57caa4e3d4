"""The emulated Fal queue: jobs whose state follows from the clock, and per-operation faults.

Why it exists: a queue job moves IN_QUEUE -> IN_PROGRESS -> COMPLETED on its own; deriving the
state from its submit time and the configured durations (instead of running workers) keeps the
emulator deterministic, lets the status stream sleep exactly until the next transition, and
makes training's minutes seconds in tests by configuration alone.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from emulators.http.faults import FaultSpec, parse_fault

__all__ = ["OPERATIONS", "FalQueue", "Job", "Operation", "QueueTimings"]

Operation = Literal["submit", "status", "result", "cancel"]
OPERATIONS: tuple[Operation, ...] = ("submit", "status", "result", "cancel")
_JOBS_KEPT = 2000


@dataclass(slots=True)
class QueueTimings:
    """Seconds a job waits in the queue and then runs; changeable through the control API."""

    queue_s: float = 0.05
    run_s: float = 0.2
    # LoRA training: minutes on Fal, seconds here.
    training_s: float = 2.0


@dataclass(slots=True)
class Job:
    request_id: str
    app: str
    submitted: float
    starts: float
    ends: float
    # The finished answer: (HTTP status, JSON body), computed at submit time.
    result: tuple[int, dict[str, Any]]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    cancelled_at: float | None = None
    webhook_url: str | None = None
    # Training jobs log steps ("step 250/1000"); inference jobs log percentages.
    steps: int | None = None

    def progress_text(self, percent: int) -> str:
        if self.steps is None:
            return f"Inference progress {percent}%"
        return f"Training step {self.steps * percent // 100}/{self.steps}"

    def state(self, now: float) -> str:
        if self.cancelled_at is not None or now >= self.ends:
            return "COMPLETED"
        return "IN_QUEUE" if now < self.starts else "IN_PROGRESS"

    def next_change(self, now: float) -> float | None:
        """Clock time of the next state change, None once completed."""
        if self.state(now) == "COMPLETED":
            return None
        return self.starts if now < self.starts else self.ends

    def logs(self, now: float) -> list[tuple[float, str]]:
        entries = [(self.submitted, "Request received, waiting in queue")]
        if now >= self.starts and (self.cancelled_at is None or self.cancelled_at > self.starts):
            entries.append((self.starts, "Runner assigned, starting inference"))
            span = self.ends - self.starts
            for step in (1, 2, 3):
                at = self.starts + span * step / 4
                if now >= at and (self.cancelled_at is None or self.cancelled_at > at):
                    entries.append((at, self.progress_text(step * 25)))
        if now >= self.ends and self.cancelled_at is None:
            entries.append((self.ends, "Inference completed"))
        return entries


class FalQueue:
    """Jobs by request id (the newest few thousand) plus faults per queue operation."""

    def __init__(self, timings: QueueTimings | None = None) -> None:
        self.defaults = timings or QueueTimings()
        self.reset()

    def reset(self) -> None:
        self.timings = QueueTimings(
            self.defaults.queue_s, self.defaults.run_s, self.defaults.training_s
        )
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.faults: dict[Operation, tuple[FaultSpec, int | None]] = {}
        self.cancels = 0
        # Storage: CDN tokens handed out, and uploaded files by "id/name".
        self.tokens: set[str] = set()
        self.uploads: OrderedDict[str, tuple[str, bytes]] = OrderedDict()

    def store_upload(self, name: str, content_type: str, data: bytes) -> str:
        """Keep an uploaded file; its key ("id/name") is the path under /files/."""
        key = f"{uuid.uuid4().hex}/{name}"
        self.uploads[key] = (content_type, data)
        while len(self.uploads) > _JOBS_KEPT:
            self.uploads.popitem(last=False)
        return key

    def file(self, request_id: str, name: str) -> tuple[str, bytes] | None:
        """A file a job produced, or an upload."""
        job = self.jobs.get(request_id)
        if job is not None and name in job.files:
            return job.files[name]
        return self.uploads.get(f"{request_id}/{name}")

    @staticmethod
    def now() -> float:
        return time.time()

    def add(
        self,
        app: str,
        result: tuple[int, dict[str, Any]],
        files: dict[str, tuple[str, bytes]],
        *,
        run_s: float | None = None,
        webhook_url: str | None = None,
        request_id: str | None = None,
        steps: int | None = None,
    ) -> Job:
        now = self.now()
        # Enough runners for every job: each waits queue_s, so positions count earlier arrivals.
        starts = now + self.timings.queue_s
        job = Job(
            request_id=request_id or str(uuid.uuid4()),
            app=app,
            submitted=now,
            starts=starts,
            ends=starts + (self.timings.run_s if run_s is None else run_s),
            result=result,
            files=files,
            webhook_url=webhook_url,
            steps=steps,
        )
        self.jobs[job.request_id] = job
        while len(self.jobs) > _JOBS_KEPT:
            self.jobs.popitem(last=False)
        return job

    def position(self, job: Job, now: float) -> int:
        """How many jobs will start before this one (0-indexed)."""
        return sum(
            1
            for other in self.jobs.values()
            if other is not job
            and other.cancelled_at is None
            and other.starts < job.starts
            and other.state(now) == "IN_QUEUE"
        )

    def cancel(self, job: Job) -> bool:
        """Cancel a job not yet completed; False when it had already completed."""
        now = self.now()
        if job.state(now) == "COMPLETED":
            return False
        job.cancelled_at = now
        self.cancels += 1
        return True

    def set_fault(self, operation: Operation, spec: str, count: int | None) -> None:
        self.faults[operation] = (parse_fault(spec), count)

    def take_fault(self, operation: Operation) -> FaultSpec | None:
        entry = self.faults.get(operation)
        if entry is None:
            return None
        spec, left = entry
        if left is not None:
            if left <= 1:
                del self.faults[operation]
            else:
                self.faults[operation] = (spec, left - 1)
        return spec
