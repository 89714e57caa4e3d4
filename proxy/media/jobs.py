"""Media jobs kept in the gateway database: their OpenAI views, their events, and looking them
up again at the provider.

Why it exists: a fine-tuning or video job outlives the request (and the process) that created
it. Its row (`database.jobs`) keeps the provider's job handle, so a job is only ever looked up
again, never resubmitted, by whichever process reads it next, also after a restart. Look-ups
go through the one retry policy with the job's own deployment only (the key that pays is
resolved again there; none is stored), one at a time per job in this process; a failed
look-up leaves the job as it was. A sweep refreshes unfinished jobs nobody reads, so results
are collected while the provider still holds them (Fal: an hour).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from core.redact import Redactor
from database import Database, DatabaseError, JobEvent, JobRecords, StoredFile, StoredJob
from proxy.errors import AllProvidersFailedError, ExternalServiceError, NotFoundError
from proxy.lifecycle import Periodic
from proxy.media.errors import translated
from proxy.resilience import Resilience
from proxy.routing import Deployment, RoutingTable, TaskRoute

__all__ = [
    "Event",
    "JobBook",
    "Refresh",
    "event_view",
    "fail",
    "file_view",
    "new_id",
    "progress_events",
]

# (level, message, data): what a refresh appends to a job's history.
Event = tuple[str, str, dict[str, Any] | None]
# Applies a provider status to a job: returns the events to append (the job is changed).
Refresh = Callable[[Any, StoredJob, Any, Any], Awaitable[list[Event]]]
_STEP = re.compile(r"step (\d+)/(\d+)", re.IGNORECASE)
_LIVE = 1000


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def file_view(record: StoredFile) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.size,
        "created_at": int(record.created_at),
        "filename": record.filename,
        "purpose": record.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def event_view(job_id: str, event: JobEvent) -> dict[str, Any]:
    return {
        "id": f"ftevent-{job_id.removeprefix('ftjob-')}-{event.seq}",
        "object": "fine_tuning.job.event",
        "created_at": int(event.created_at),
        "level": event.level,
        "message": event.message,
        "data": event.data or {},
        "type": "metrics" if event.data else "message",
    }


def progress_events(job: StoredJob, logs: Sequence[str]) -> list[Event]:
    """The provider's new log lines as events (steps as metrics)."""
    events: list[Event] = []
    for line in logs[job.logs_seen :]:
        match = _STEP.search(line)
        data = {"step": int(match[1]), "total_steps": int(match[2])} if match else None
        events.append(("info", line, data))
    job.logs_seen = max(job.logs_seen, len(logs))
    return events


class JobBook:
    """Jobs and files in the gateway database, looked up at their providers through
    `resilience`. Without a gateway database they are kept in a temporary SQLite file for the
    process's life (the same code path; nothing survives a restart then)."""

    def __init__(
        self,
        *,
        database: Database | None,
        routing: RoutingTable,
        resilience: Resilience,
        providers: Mapping[str, Any],
        redactor: Redactor,
        sweep_s: float = 5.0,
        sweep: bool = True,
    ) -> None:
        self._database = database
        self._records: JobRecords | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._own: Database | None = None
        self._kinds: dict[str, Refresh] = {}
        # False: another process sharing the database sweeps; reads here still refresh.
        self._sweep_on = sweep
        self._sweeper = Periodic(self._sweep, sweep_s)
        self._routing = routing
        self._resilience = resilience
        self._providers = providers
        self._redactor = redactor
        # The plugins' job objects of recent jobs (they hold the key for this process's life).
        self._live: OrderedDict[str, Any] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._log = structlog.get_logger("proxy.media.jobs")

    @property
    def records(self) -> JobRecords:
        if self._records is None:
            raise RuntimeError("JobBook.start() was not awaited")
        return self._records

    def resume(self, kind: str, apply: Refresh) -> None:
        """Have the sweep refresh unfinished jobs of `kind` with `apply` (before start)."""
        self._kinds[kind] = apply

    async def start(self) -> None:
        database = self._database
        if database is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="gateway-media-")
            database = self._own = Database(f"sqlite:///{self._scratch.name}/media.db")
            await database.start()
        self._records = JobRecords(database)
        if self._kinds and self._sweep_on:
            self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()
        if self._own is not None:
            await self._own.stop()
            self._own = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def remember(self, job_id: str, provider_job: Any) -> None:
        self._live[job_id] = provider_job
        while len(self._live) > _LIVE:
            self._live.popitem(last=False)

    def provider_job(self, job: StoredJob) -> Any:
        """The plugin's job object: this process's own, or rebuilt from the stored handle."""
        found = self._live.get(job.id)
        if found is None:
            found = self._providers[job.provider].restore_job(job.handle)
            self.remember(job.id, found)
        return found

    def deployment(self, job: StoredJob) -> Deployment | None:
        """The configured deployment that created the job (its key and api_base)."""
        for task in (job.task, *self._routing.tasks()):
            route = self._routing.get(task)
            for deployment in route.deployments if route is not None else ():
                if deployment.model == job.model and deployment.provider == job.provider:
                    return deployment
        return None

    async def visible(self, job_id: str, user: str | None) -> StoredJob | None:
        """The job, if `user` may see it (the master key, None, sees all)."""
        job = await self.records.job(job_id)
        if job is None or (user is not None and job.owner != user):
            return None
        return job

    async def call(self, job: StoredJob, action: Callable[[Any, Any], Awaitable[Any]]) -> Any:
        """`action(plugin, provider_job)` for the job's deployment under the retry policy."""
        deployment = self.deployment(job)
        if deployment is None:
            raise AllProvidersFailedError(job.task, ())
        plugin = self._providers[job.provider]
        provider_job = self.provider_job(job)

        async def attempt(deployment: Deployment, key: str) -> Any:
            plugin.use_key(provider_job, key)
            with translated(job.provider, self._redactor):
                return await action(plugin, provider_job)

        route = TaskRoute(task=job.task, deployments=(deployment,))
        return (await self._resilience.run(route, job.owner, attempt)).value

    async def refresh(self, job: StoredJob, apply: Refresh, *, finished: bool) -> StoredJob:
        """Ask the provider once how the job stands and apply it; a failed look-up changes
        nothing. Returns the job as stored afterwards."""
        if finished:
            return job
        lock = self._locks.get(job.id)
        if lock is None:
            lock = self._locks[job.id] = asyncio.Lock()
        async with lock:
            current = await self.records.job(job.id)
            if current is None or current.finished_at is not None:
                return current or job
            try:
                status = await self.call(current, lambda plugin, pj: plugin.poll(pj))
                events = await apply(self._providers[current.provider], current, status, self)
            except ExternalServiceError as error:
                if not _job_gone(error):
                    # A look-up this process cannot make (an outage, no key here, a key the
                    # provider refuses) says nothing about the job: another process, or this
                    # one once the key is back, finds it as it is.
                    self._log.warning("job_status_unavailable", job=job.id, error=error.message)
                    return current
                events = fail(current, error.message)
            # Provider text (logs, error messages) is stored as clients are shown it: scrubbed.
            events = [(level, self._redactor.scrub(text), data) for level, text, data in events]
            if current.error is not None:
                current.error["message"] = self._redactor.scrub(str(current.error["message"]))
            if not await self.records.save(current, events):
                return await self.records.job(job.id) or current
            return current

    async def _sweep(self) -> None:
        """Refresh every unfinished job, one round of the sweeper (every `sweep_s`): what
        resumes jobs after a restart. Not a retry: each round is one look-up per job, and a
        failed one is simply not applied."""
        try:
            for job in await self.records.unfinished():
                if job.kind in self._kinds:
                    with contextlib.suppress(ExternalServiceError):
                        await self.refresh(job, self._kinds[job.kind], finished=False)
        except DatabaseError as exc:
            # The next round reads again; the jobs stay as they are meanwhile.
            self._log.warning("job_sweep_failed", error=str(exc))


def _job_gone(error: ExternalServiceError) -> bool:
    """Whether the provider answered that it no longer knows the job (404 for its handle)."""
    if isinstance(error, AllProvidersFailedError):
        return bool(error.failures) and all(
            isinstance(f.error, NotFoundError) for f in error.failures
        )
    return isinstance(error, NotFoundError)


def fail(job: StoredJob, message: str, *, code: str = "job_failed") -> list[Event]:
    """Mark the job failed with `message` (already redacted); its closing event."""
    job.status = "failed"
    job.finished_at = time.time()
    job.error = {"code": code, "message": message, "param": None}
    return [("error", f"Job failed: {message}", None)]
