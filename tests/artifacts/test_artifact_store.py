"""The local artifact store: content addressing, idempotence, refusal of bad ids, retention."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest

from artifacts import ArtifactNotFound, ArtifactRef, InvalidArtifactId, LocalArtifactStore

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100


def _data_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and len(p.name) == 64]


def _sidecars(root: Path) -> list[Path]:
    return list(root.rglob("*.meta"))


async def test_put_returns_a_reference_named_by_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    """The id is the bytes' sha256 hex digest, with their size and the given content type."""
    ref = await LocalArtifactStore(tmp_path).put(PNG, "image/png")
    assert ref == ArtifactRef(
        id=hashlib.sha256(PNG).hexdigest(), content_type="image/png", size=len(PNG)
    )


async def test_get_returns_the_bytes_that_were_put(tmp_path: Path) -> None:
    """What comes back is byte for byte what went in."""
    store = LocalArtifactStore(tmp_path)
    ref = await store.put(PNG, "image/png")
    assert await store.get(ref.id) == PNG


async def test_putting_the_same_bytes_twice_stores_them_once(tmp_path: Path) -> None:
    """A second put, even a concurrent one, returns the same reference and adds no file."""
    store = LocalArtifactStore(tmp_path)
    refs = await asyncio.gather(*(store.put(PNG, "image/png") for _ in range(4)))
    assert len(set(refs)) == 1
    assert len(_data_files(tmp_path)) == 1


async def test_the_content_type_survives_a_new_store_on_the_same_directory(tmp_path: Path) -> None:
    """The content type is stored beside the bytes, not held in memory."""
    ref = await LocalArtifactStore(tmp_path).put(b"{}", "application/json")
    assert await LocalArtifactStore(tmp_path).ref(ref.id) == ref


async def test_files_are_sharded_by_the_id_prefix(tmp_path: Path) -> None:
    """The bytes live in a folder named by the first two hex digits of the id."""
    ref = await LocalArtifactStore(tmp_path).put(PNG, "image/png")
    assert (tmp_path / ref.id[:2] / ref.id).read_bytes() == PNG


async def test_getting_an_unknown_id_raises_not_found(tmp_path: Path) -> None:
    """A well-formed id that was never stored is ArtifactNotFound, not an OSError."""
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(ArtifactNotFound, match=missing):
        await LocalArtifactStore(tmp_path).get(missing)


@pytest.mark.parametrize(
    "bad_id",
    ["../../etc/passwd", "A" * 64, "a" * 63, "a" * 65, "", "/" + "a" * 63, "a" * 62 + "/."],
)
async def test_ids_that_are_not_a_digest_are_refused_before_touching_the_disk(
    tmp_path: Path, bad_id: str
) -> None:
    """get, exists and delete all refuse anything but 64 lowercase hex digits."""
    store = LocalArtifactStore(tmp_path / "store")
    for call in (store.get, store.exists, store.delete):
        with pytest.raises(InvalidArtifactId):
            await call(bad_id)


async def test_delete_removes_the_artifact(tmp_path: Path) -> None:
    """After delete the artifact neither exists nor can be read, and deleting again is fine."""
    store = LocalArtifactStore(tmp_path)
    ref = await store.put(PNG, "image/png")
    await store.delete(ref.id)
    assert not await store.exists(ref.id)
    with pytest.raises(ArtifactNotFound):
        await store.get(ref.id)
    await store.delete(ref.id)
    assert _sidecars(tmp_path) == []


async def test_garbage_collection_removes_only_artifacts_past_retention(tmp_path: Path) -> None:
    """An artifact stored two hours ago goes with a one-hour retention; one stored now stays."""
    store = LocalArtifactStore(tmp_path)
    old = await store.put(b"old frame", "image/jpeg")
    fresh = await store.put(b"fresh frame", "image/jpeg")
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / old.id[:2] / old.id, (two_hours_ago, two_hours_ago))
    assert await store.collect_garbage(retention_s=3600) == 1
    assert not await store.exists(old.id)
    assert await store.get(fresh.id) == b"fresh frame"


async def test_garbage_collection_counts_from_the_given_time(tmp_path: Path) -> None:
    """With `now` a day ahead, every artifact is past a one-hour retention."""
    store = LocalArtifactStore(tmp_path)
    for index in range(3):
        await store.put(f"frame {index}".encode(), "image/jpeg")
    assert await store.collect_garbage(retention_s=3600, now=time.time() + 86400) == 3
    assert _data_files(tmp_path) == []


async def test_putting_again_renews_an_artifacts_age(tmp_path: Path) -> None:
    """Storing bytes that are already there restarts their retention."""
    store = LocalArtifactStore(tmp_path)
    ref = await store.put(PNG, "image/png")
    path = tmp_path / ref.id[:2] / ref.id
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    await store.put(PNG, "image/png")
    assert await store.collect_garbage(retention_s=3600) == 0
    assert await store.exists(ref.id)


async def test_garbage_collection_removes_temporary_files_left_by_a_crash(tmp_path: Path) -> None:
    """A half-written temporary file past retention is removed but not counted as an artifact."""
    store = LocalArtifactStore(tmp_path)
    ref = await store.put(PNG, "image/png")
    leftover = tmp_path / ref.id[:2] / ".tmp-interrupted"
    leftover.write_bytes(b"partial")
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))
    assert await store.collect_garbage(retention_s=3600) == 0
    assert not leftover.exists()
    assert await store.exists(ref.id)
