"""The media job store on SQLite and PostgreSQL: jobs and their events survive a reopen,
writes are optimistic, pages follow creation order, files keep their bytes within a limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from keys_support import new_database_url

from database import Database, FileTooLargeError, JobRecords, StoredJob


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    return new_database_url(str(request.param), tmp_path, postgres)


@pytest.fixture
async def records(database_url: str) -> AsyncIterator[JobRecords]:
    """The store over a migrated database."""
    db = Database(database_url)
    await db.start()
    yield JobRecords(db, max_file_bytes=1024)
    await db.stop()


def _job(job_id: str, owner: str | None = "alice", created_at: float = 1.0) -> StoredJob:
    return StoredJob(
        id=job_id,
        kind="video",
        owner=owner,
        task="video-generation",
        provider="fal",
        model="fal/fal-ai/kling",
        status="queued",
        inputs={"prompt": "a coat"},
        created_at=created_at,
        request_id=f"req-{job_id}",
        handle={"request_id": f"req-{job_id}", "status_url": "http://fal/status"},
    )


async def test_a_job_and_its_events_are_read_back_after_reopening(database_url: str) -> None:
    """What one process wrote (handle, result, events) another opening the database reads."""
    first = Database(database_url)
    await first.start()
    store = JobRecords(first)
    job = _job("video_a")
    await store.add_job(job, [("info", "created", None)])
    job.status, job.result = "completed", {"url": "http://fal/v.mp4"}
    assert await store.save(job, [("info", "done", {"step": 3})])
    await first.stop()
    second = Database(database_url)
    await second.start()
    again = JobRecords(second)
    found = await again.job("video_a")
    events, more = await again.events("video_a")
    by_request = await again.by_request("fal", "req-video_a")
    await second.stop()
    assert found is not None and found.result == {"url": "http://fal/v.mp4"}
    assert found.handle == {"request_id": "req-video_a", "status_url": "http://fal/status"}
    assert [e.message for e in events] == ["done", "created"] and not more
    assert events[0].data == {"step": 3}
    assert by_request is not None and by_request.id == "video_a"


async def test_a_stale_save_writes_nothing(records: JobRecords) -> None:
    """Two writers read version 0; the second save is refused and adds no event."""
    await records.add_job(_job("video_b"))
    one, two = await records.job("video_b"), await records.job("video_b")
    assert one is not None and two is not None
    assert await records.save(one, [("info", "first", None)])
    assert not await records.save(two, [("info", "second", None)])
    events, _ = await records.events("video_b")
    assert [e.message for e in events] == ["first"]


async def test_pages_are_newest_first_per_owner_with_a_cursor(records: JobRecords) -> None:
    """jobs() pages by creation time after a cursor, filtered by owner unless owner is None."""
    for index in range(5):
        await records.add_job(_job(f"video_{index}", created_at=10.0 + index))
    await records.add_job(_job("video_bob", owner="bob", created_at=20.0))
    page, more = await records.jobs("video", owner="alice", limit=2)
    assert [j.id for j in page] == ["video_4", "video_3"] and more
    rest, more = await records.jobs("video", owner="alice", after="video_3", limit=10)
    assert [j.id for j in rest] == ["video_2", "video_1", "video_0"] and not more
    everyone, _ = await records.jobs("video", owner=None, limit=10)
    assert everyone[0].id == "video_bob"


async def test_unfinished_jobs_are_what_a_restart_resumes(records: JobRecords) -> None:
    """unfinished() lists the jobs without a finish time, oldest first."""
    await records.add_job(_job("video_x", created_at=2.0))
    done = _job("video_y", created_at=1.0)
    done.finished_at = 3.0
    await records.add_job(done)
    await records.add_job(_job("video_z", created_at=1.5))
    assert [j.id for j in await records.unfinished()] == ["video_z", "video_x"]


async def test_files_keep_their_bytes_and_refuse_oversized_ones(records: JobRecords) -> None:
    """A stored file reads back byte for byte; one above the limit is refused."""
    await records.add_file("file-1", owner=None, filename="a.zip", purpose="fine-tune", data=b"PK")
    found = await records.file("file-1")
    assert found is not None and found.data == b"PK" and found.size == 2
    with pytest.raises(FileTooLargeError):
        await records.add_file("file-2", owner=None, filename="b", purpose="x", data=b"0" * 2000)
    assert await records.file("file-2") is None


async def test_deleting_a_job_removes_its_events(records: JobRecords) -> None:
    """delete_job removes the row and its history; a second delete finds nothing."""
    await records.add_job(_job("video_d"), [("info", "created", None)])
    assert await records.delete_job("video_d")
    assert await records.job("video_d") is None
    assert (await records.events("video_d"))[0] == []
    assert not await records.delete_job("video_d")
