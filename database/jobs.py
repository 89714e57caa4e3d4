"""Media jobs, their events and the files they read, as stored.

Why a repository: a fine-tuning or video job outlives the request (and the process) that
created it. Its row keeps the provider's job handle, so that after a restart the job is only
looked up again, never submitted twice; the routes see typed records, never SQL.

Guarantees:
- `save` is optimistic: it writes only if the row is still at the version the caller read,
  and the job's new events go in the same transaction, so two processes refreshing one job
  never both append the same progress (the loser re-reads).
- Rows hold no secret: the provider key that pays for a job is resolved again whenever the
  job is looked up; errors are stored as the redacted messages the client was shown.
- File bytes live in `media_files.data`, at most `MAX_FILE_BYTES` each (larger uploads are
  refused), so every gateway process sharing the database reads the same files.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from database.engine import Database
from database.errors import FileTooLargeError
from database.schema import media_files, media_job_events, media_jobs

__all__ = ["MAX_FILE_BYTES", "JobEvent", "JobRecords", "StoredFile", "StoredJob"]

# Training archives of a few hundred images fit; bigger inputs belong behind a URL.
MAX_FILE_BYTES = 100 * 1024 * 1024
_MAX_PAGE = 100


@dataclass(slots=True)
class StoredFile:
    id: str
    owner: str | None
    filename: str
    purpose: str
    size: int
    created_at: float
    # None when listed without its bytes.
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One line of a job's history; `seq` counts from 0 per job."""

    seq: int
    created_at: float
    level: str
    message: str
    data: dict[str, Any] | None = None


@dataclass(slots=True)
class StoredJob:
    """A job as stored; the routes change it and hand it back to `JobRecords.save`."""

    id: str
    kind: str
    owner: str | None
    task: str
    provider: str
    model: str
    status: str
    inputs: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    cost_usd: float | None = None
    # The provider's own request id (callbacks name it) and its job handle.
    request_id: str | None = None
    handle: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    progress: int = 0
    position: int | None = None
    logs_seen: int = 0
    # How many events the job has, and the row's version (both kept by `save`).
    events: int = 0
    version: int = 0


_FIELDS = tuple(c.name for c in media_jobs.columns)


def _job(row: sa.Row[Any]) -> StoredJob:
    return StoredJob(**{name: getattr(row, name) for name in _FIELDS})


class JobRecords:
    """Jobs, events and files in `database` (migrated by its owner)."""

    def __init__(self, database: Database, *, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self._db = database
        self._max_file_bytes = max_file_bytes

    # --- files ------------------------------------------------------------------------------

    async def add_file(
        self, file_id: str, *, owner: str | None, filename: str, purpose: str, data: bytes
    ) -> StoredFile:
        if len(data) > self._max_file_bytes:
            raise FileTooLargeError(
                f"the file is {len(data)} bytes; at most {self._max_file_bytes} are kept"
            )
        record = StoredFile(file_id, owner, filename[:255], purpose, len(data), time.time())
        async with self._db.engine.begin() as conn:
            await conn.execute(
                media_files.insert().values(
                    id=record.id,
                    owner=owner,
                    filename=record.filename,
                    purpose=purpose,
                    size=record.size,
                    data=data,
                    created_at=record.created_at,
                )
            )
        return record

    async def file(self, file_id: str) -> StoredFile | None:
        """The file with its bytes."""
        async with self._db.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(media_files).where(media_files.c.id == file_id))
            ).first()
        if row is None:
            return None
        return StoredFile(
            row.id, row.owner, row.filename, row.purpose, row.size, row.created_at, row.data
        )

    # --- jobs -------------------------------------------------------------------------------

    async def add_job(self, job: StoredJob, events: Sequence[tuple[str, str, Any]] = ()) -> None:
        """Insert `job` with its first events (level, message, data)."""
        new = _numbered(job, events)
        values = {name: getattr(job, name) for name in _FIELDS}
        async with self._db.engine.begin() as conn:
            await conn.execute(media_jobs.insert().values(**values))
            await _insert_events(conn, job.id, new)

    async def job(self, job_id: str) -> StoredJob | None:
        async with self._db.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(media_jobs).where(media_jobs.c.id == job_id))
            ).first()
        return None if row is None else _job(row)

    async def by_request(self, provider: str, request_id: str) -> StoredJob | None:
        """The job the provider knows as `request_id` (what its callbacks name)."""
        query = sa.select(media_jobs).where(
            media_jobs.c.provider == provider, media_jobs.c.request_id == request_id
        )
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _job(row)

    async def jobs(
        self,
        kind: str,
        *,
        owner: str | None,
        after: str | None = None,
        limit: int = 20,
        newest_first: bool = True,
    ) -> tuple[list[StoredJob], bool]:
        """A page of `kind` jobs (`owner` None: everyone's) after the job `after`; and
        whether more follow."""
        query = sa.select(media_jobs).where(media_jobs.c.kind == kind)
        if owner is not None:
            query = query.where(media_jobs.c.owner == owner)
        order = (media_jobs.c.created_at, media_jobs.c.id)
        async with self._db.engine.connect() as conn:
            if after is not None:
                mark = (
                    await conn.execute(
                        sa.select(media_jobs.c.created_at).where(media_jobs.c.id == after)
                    )
                ).scalar_one_or_none()
                if mark is None:
                    return [], False
                position = sa.tuple_(*order)
                pivot = sa.tuple_(sa.literal(mark), sa.literal(after))
                query = query.where(position < pivot if newest_first else position > pivot)
            query = query.order_by(*(c.desc() if newest_first else c.asc() for c in order))
            size = max(1, min(limit, _MAX_PAGE))
            rows = (await conn.execute(query.limit(size + 1))).all()
        return [_job(r) for r in rows[:size]], len(rows) > size

    async def unfinished(self) -> list[StoredJob]:
        """Every job not yet finished, oldest first: what a starting gateway resumes."""
        query = (
            sa.select(media_jobs)
            .where(media_jobs.c.finished_at.is_(None))
            .order_by(media_jobs.c.created_at)
        )
        async with self._db.engine.connect() as conn:
            return [_job(r) for r in await conn.execute(query)]

    async def save(self, job: StoredJob, events: Sequence[tuple[str, str, Any]] = ()) -> bool:
        """Write `job` and append `events`, unless another writer changed the row since it was
        read (then nothing is written and False is returned)."""
        read_version, read_events = job.version, job.events
        new = _numbered(job, events)
        job.version = read_version + 1
        values = {name: getattr(job, name) for name in _FIELDS if name not in ("id", "created_at")}
        async with self._db.engine.begin() as conn:
            updated = await conn.execute(
                media_jobs.update()
                .where(media_jobs.c.id == job.id, media_jobs.c.version == read_version)
                .values(**values)
            )
            if updated.rowcount == 0:
                job.version, job.events = read_version, read_events
                return False
            await _insert_events(conn, job.id, new)
        return True

    async def events(
        self, job_id: str, *, after: int | None = None, limit: int = 20
    ) -> tuple[list[JobEvent], bool]:
        """A page of the job's events, newest first, older than event `after`."""
        query = sa.select(media_job_events).where(media_job_events.c.job_id == job_id)
        if after is not None:
            query = query.where(media_job_events.c.seq < after)
        size = max(1, min(limit, _MAX_PAGE))
        query = query.order_by(media_job_events.c.seq.desc()).limit(size + 1)
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        page = [JobEvent(r.seq, r.created_at, r.level, r.message, r.data) for r in rows[:size]]
        return page, len(rows) > size

    async def delete_job(self, job_id: str) -> bool:
        async with self._db.engine.begin() as conn:
            await conn.execute(media_job_events.delete().where(media_job_events.c.job_id == job_id))
            result = await conn.execute(media_jobs.delete().where(media_jobs.c.id == job_id))
        return bool(result.rowcount)


def _numbered(job: StoredJob, events: Sequence[tuple[str, str, Any]]) -> list[JobEvent]:
    now = time.time()
    numbered = [
        JobEvent(job.events + index, now, level, message, data)
        for index, (level, message, data) in enumerate(events)
    ]
    job.events += len(numbered)
    return numbered


async def _insert_events(conn: Any, job_id: str, events: Sequence[JobEvent]) -> None:
    if events:
        await conn.execute(
            media_job_events.insert(),
            [
                {
                    "job_id": job_id,
                    "seq": e.seq,
                    "created_at": e.created_at,
                    "level": e.level,
                    "message": e.message,
                    "data": e.data,
                }
                for e in events
            ],
        )
