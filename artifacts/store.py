"""Content-addressed artifact storage: images and videos travel by reference, never inside
Kafka records (brokers refuse records over about 1 MB by default).

An artifact's id is the sha256 hex digest of its bytes, so putting the same bytes twice stores
them once and a reference can never point at different bytes later. `ArtifactStore` is the
interface every store implements; `LocalArtifactStore` (a directory) is the embedded default,
`artifacts.s3.S3ArtifactStore` (a bucket) the store a cluster of hosts shares.

Layout under the root: `<id[:2]>/<id>` holds the bytes and `<id[:2]>/<id>.meta` the content
type (JSON). Both are written to a temporary file and renamed into place, the sidecar first,
so a reader that sees the bytes always finds the content type, and a crash mid-write leaves at
most a temporary file that garbage collection removes. Puts, deletes and collections of one
shard hold `<id[:2]>/.lock` (flock), so several processes may share the directory on one host;
readers take no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from artifacts.errors import ArtifactNotFound, InvalidArtifactId

__all__ = ["ArtifactRef", "ArtifactStore", "LocalArtifactStore", "artifact_id_of"]

_ID = re.compile(r"[0-9a-f]{64}")
_META_SUFFIX = ".meta"
_TEMP_PREFIX = ".tmp-"
_LOCK_NAME = ".lock"


class ArtifactRef(msgspec.Struct, frozen=True):
    """What an event carries instead of the bytes."""

    id: str
    content_type: str
    size: int


class _Meta(msgspec.Struct, frozen=True):
    content_type: str


_meta_encoder = msgspec.json.Encoder()
_meta_decoder = msgspec.json.Decoder(_Meta)


class ArtifactStore(Protocol):
    """Where artifacts live. Every method is safe to call concurrently; `put` is idempotent,
    and once `put` has returned, `get` of its id returns the same bytes until `delete` or
    garbage collection removes them."""

    async def put(self, data: bytes, content_type: str) -> ArtifactRef: ...

    async def get(self, artifact_id: str) -> bytes: ...

    async def ref(self, artifact_id: str) -> ArtifactRef: ...

    async def exists(self, artifact_id: str) -> bool: ...

    async def delete(self, artifact_id: str) -> None: ...

    async def collect_garbage(self, retention_s: float, now: float | None = None) -> int: ...


def artifact_id_of(data: bytes) -> str:
    """The id the bytes are stored under."""
    return hashlib.sha256(data).hexdigest()


def _check_id(artifact_id: str) -> str:
    # The id becomes a file name: anything but a digest (a "../", a separator) is refused
    # before it reaches the file system.
    if not isinstance(artifact_id, str) or _ID.fullmatch(artifact_id) is None:
        raise InvalidArtifactId(f"artifact id must be 64 lowercase hex digits: {artifact_id!r:.80}")
    return artifact_id


class LocalArtifactStore:
    """Artifacts in a local directory; file I/O runs in worker threads, off the event loop.

    Putting bytes that are already stored keeps the content type of the first put and renews
    the artifact's age, so retention counts from the last time anyone stored it.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        return self._root

    async def put(self, data: bytes, content_type: str) -> ArtifactRef:
        if not content_type or "\n" in content_type:
            raise ValueError("content_type must be a non-empty single line")
        return await asyncio.to_thread(self._put, bytes(data), content_type)

    async def get(self, artifact_id: str) -> bytes:
        path = self._data_path(_check_id(artifact_id))
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise ArtifactNotFound(artifact_id) from None

    async def ref(self, artifact_id: str) -> ArtifactRef:
        return await asyncio.to_thread(self._ref, _check_id(artifact_id))

    async def exists(self, artifact_id: str) -> bool:
        return await asyncio.to_thread(self._data_path(_check_id(artifact_id)).is_file)

    async def delete(self, artifact_id: str) -> None:
        """Remove the artifact; deleting one that is not stored is not an error."""
        await asyncio.to_thread(self._delete, _check_id(artifact_id))

    async def collect_garbage(self, retention_s: float, now: float | None = None) -> int:
        """Remove artifacts last stored more than `retention_s` seconds before `now`; returns
        how many. Temporary files and sidecars left by a crash are removed as well."""
        if retention_s < 0:
            raise ValueError("retention_s must not be negative")
        cutoff = (time.time() if now is None else now) - retention_s
        return await asyncio.to_thread(self._collect, cutoff)

    # -- blocking halves, run in worker threads -------------------------------------------

    def _shard(self, artifact_id: str) -> Path:
        return self._root / artifact_id[:2]

    def _data_path(self, artifact_id: str) -> Path:
        return self._shard(artifact_id) / artifact_id

    def _put(self, data: bytes, content_type: str) -> ArtifactRef:
        artifact_id = artifact_id_of(data)
        path = self._data_path(artifact_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The bytes are written outside the lock (they may be large); only the check and the
        # rename that makes them visible are serialised with garbage collection.
        temp = None if path.is_file() else _write_temp(path.parent, data)
        try:
            with _shard_lock(path.parent):
                if path.is_file():
                    # Renewed under the lock, so a collection cannot remove what this put
                    # is about to report as stored.
                    os.utime(path)
                    return self._ref(artifact_id)
                if temp is None or not temp.exists():
                    # Not written yet, or taken by a collection with a retention shorter than
                    # the write took; under the lock no collection can take it again.
                    temp = _write_temp(path.parent, data)
                meta = _meta_encoder.encode(_Meta(content_type=content_type))
                os.replace(
                    _write_temp(path.parent, meta), path.with_name(artifact_id + _META_SUFFIX)
                )
                os.replace(temp, path)
                temp = None
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)
        return ArtifactRef(id=artifact_id, content_type=content_type, size=len(data))

    def _ref(self, artifact_id: str) -> ArtifactRef:
        path = self._data_path(artifact_id)
        try:
            size = path.stat().st_size
            meta = _meta_decoder.decode(path.with_name(artifact_id + _META_SUFFIX).read_bytes())
        except FileNotFoundError:
            raise ArtifactNotFound(artifact_id) from None
        return ArtifactRef(id=artifact_id, content_type=meta.content_type, size=size)

    def _delete(self, artifact_id: str) -> None:
        path = self._data_path(artifact_id)
        if not path.parent.is_dir():
            return
        with _shard_lock(path.parent):
            _unlink_artifact(path)

    def _collect(self, cutoff: float) -> int:
        if not self._root.is_dir():
            return 0
        removed = 0
        for shard in sorted(self._root.iterdir()):
            if not shard.is_dir() or len(shard.name) != 2:
                continue
            with _shard_lock(shard):
                for entry in list(shard.iterdir()):
                    try:
                        if entry.stat().st_mtime >= cutoff:
                            continue
                    except FileNotFoundError:
                        continue
                    if _ID.fullmatch(entry.name):
                        _unlink_artifact(entry)
                        removed += 1
                    elif _is_leftover(entry):
                        entry.unlink(missing_ok=True)
        return removed


def _unlink_artifact(path: Path) -> None:
    # Bytes first: an artifact without its sidecar must never be visible.
    path.unlink(missing_ok=True)
    path.with_name(path.name + _META_SUFFIX).unlink(missing_ok=True)


@contextlib.contextmanager
def _shard_lock(shard: Path) -> Iterator[None]:
    """Exclusive hold on one shard, across threads and processes sharing the directory:
    a put's exists-check-then-publish and a collection's stat-then-delete of the same
    artifact must not interleave, or a put could report bytes that a collection then removes.
    """
    fd = os.open(shard / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _is_leftover(entry: Path) -> bool:
    """A temporary file from an interrupted put, or a sidecar whose bytes are gone."""
    if entry.name.startswith(_TEMP_PREFIX):
        return True
    return entry.name.endswith(_META_SUFFIX) and not entry.with_suffix("").exists()


def _write_temp(directory: Path, data: bytes) -> Path:
    """A durable temporary file in `directory`, ready to be renamed into place."""
    fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            # Durable before it becomes visible: a rename of unflushed data can surface an
            # empty file under a digest after a power loss.
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return Path(temp_name)
