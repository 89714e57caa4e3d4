"""The `ArtifactStore` contract, one set of behaviours run against every store: the local
directory and an S3 bucket on a real S3-compatible server (versitygw)."""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from artifacts import (
    ArtifactNotFound,
    ArtifactRef,
    ArtifactStore,
    InvalidArtifactId,
    LocalArtifactStore,
)
from artifacts.s3 import S3ArtifactStore
from artifacts.settings import S3Settings
from services import S3Server

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100
JPEG = b"\xff\xd8\xff" + b"jpeg" * 50


def s3_settings(server: S3Server, bucket: str) -> S3Settings:
    return S3Settings(
        bucket=bucket,
        endpoint_url=server.endpoint_url,
        region=server.region,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
    )


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ArtifactStore]:
    """Each store the gateway can be configured with, empty."""
    if request.param == "local":
        yield LocalArtifactStore(tmp_path / "artifacts")
        return
    server: S3Server = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    yield S3ArtifactStore(s3_settings(server, bucket))


async def _next_whole_second() -> float:
    """Wait until the next whole second and return it: S3 keeps Last-Modified in whole
    seconds, so an artifact put after this moment is at least as young as it."""
    mark = float(math.floor(time.time()) + 1)
    await asyncio.sleep(mark - time.time() + 0.05)
    return mark


async def test_put_returns_the_sha256_reference(store: ArtifactStore) -> None:
    """The id is the bytes' sha256 hex digest, with their size and the given content type."""
    ref = await store.put(PNG, "image/png")
    assert ref == ArtifactRef(
        id=hashlib.sha256(PNG).hexdigest(), content_type="image/png", size=len(PNG)
    )


async def test_get_ref_and_exists_describe_what_was_put(store: ArtifactStore) -> None:
    """The bytes come back unchanged, and ref and exists describe the stored artifact."""
    ref = await store.put(PNG, "image/png")
    assert await store.get(ref.id) == PNG
    assert await store.ref(ref.id) == ref
    assert await store.exists(ref.id)


async def test_delete_removes_the_artifact_and_is_idempotent(store: ArtifactStore) -> None:
    """After delete the artifact is gone; deleting it again is not an error."""
    ref = await store.put(PNG, "image/png")
    await store.delete(ref.id)
    await store.delete(ref.id)
    assert not await store.exists(ref.id)
    with pytest.raises(ArtifactNotFound):
        await store.get(ref.id)


async def test_a_second_put_keeps_the_first_content_type(store: ArtifactStore) -> None:
    """Putting stored bytes again returns the first reference, content type included."""
    first = await store.put(JPEG, "image/jpeg")
    again = await store.put(JPEG, "application/octet-stream")
    assert again == first
    assert (await store.ref(first.id)).content_type == "image/jpeg"


async def test_concurrent_puts_of_the_same_bytes_agree(store: ArtifactStore) -> None:
    """Puts racing each other with the same bytes all return one reference, which is stored."""
    refs = await asyncio.gather(*(store.put(PNG, "image/png") for _ in range(6)))
    assert len(set(refs)) == 1
    assert await store.get(refs[0].id) == PNG


async def test_a_missing_artifact_is_not_found(store: ArtifactStore) -> None:
    """get and ref of an id never stored raise ArtifactNotFound naming it; exists is False."""
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(ArtifactNotFound) as raised:
        await store.get(missing)
    assert raised.value.artifact_id == missing
    with pytest.raises(ArtifactNotFound):
        await store.ref(missing)
    assert not await store.exists(missing)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 64, "abc", "0" * 63 + "/"])
async def test_a_malformed_id_is_refused_by_every_method(store: ArtifactStore, bad: str) -> None:
    """Anything but 64 lowercase hex digits is refused before the store is asked."""
    for call in (store.get, store.ref, store.exists, store.delete):
        with pytest.raises(InvalidArtifactId):
            await call(bad)


async def test_garbage_collection_removes_only_what_is_past_retention(
    store: ArtifactStore,
) -> None:
    """An artifact stored before the cutoff is removed and counted; one stored after stays."""
    old = await store.put(JPEG, "image/jpeg")
    cutoff = await _next_whole_second()
    fresh = await store.put(PNG, "image/png")
    assert await store.collect_garbage(retention_s=10.0, now=cutoff + 10.0) == 1
    assert not await store.exists(old.id)
    assert await store.get(fresh.id) == PNG


async def test_a_second_put_renews_the_age(store: ArtifactStore) -> None:
    """Retention counts from the last put: bytes put again after the cutoff are kept."""
    ref = await store.put(PNG, "image/png")
    cutoff = await _next_whole_second()
    await store.put(PNG, "image/png")
    assert await store.collect_garbage(retention_s=0.0, now=cutoff) == 0
    assert await store.exists(ref.id)


async def test_garbage_collection_refuses_a_negative_retention(store: ArtifactStore) -> None:
    """A negative retention is a caller's mistake, not "delete everything"."""
    with pytest.raises(ValueError, match="retention"):
        await store.collect_garbage(retention_s=-1.0)
