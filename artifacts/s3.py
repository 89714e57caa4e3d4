"""Artifacts in an S3-compatible bucket: what a cluster of gateway processes on several hosts
shares, where `LocalArtifactStore`'s directory reaches only one host.

Same contract as the local store (`artifacts.store.ArtifactStore`): the object key is
`<prefix><sha256 of the bytes>`, the content type is the object's Content-Type, and the
object's Last-Modified is the artifact's age. A put of bytes already stored keeps the first
content type and renews the age (the bytes are written again under that type), so retention
counts from the last time anyone stored it. New objects are written with `If-None-Match: *`,
so of two concurrent puts of the same bytes exactly one writes and the other renews what it
wrote.

Why botocore's own S3 client (boto3's core; boto3's resource layer adds nothing here) rather
than its SigV4 signer over httpx: the client is already installed (LiteLLM depends on it), it
knows every S3 dialect detail (path-style addressing, checksums, error codes in HEAD answers
without a body) that a hand-written client would have to relearn, and an artifact call is one
request, so running it in a worker thread costs far less than the transfer itself. One
client per store, made on first use (clients are thread-safe); its own retries are off,
because retries belong to the caller (a retriable error goes back to the consumer, which
redelivers the event).

Garbage collection lists the prefix and deletes what was last modified before the cutoff.
Unlike the local store, nothing locks a put against a collection: a put that renews an
artifact between the listing and the delete loses it. Retention is days and a listing page is
deleted within seconds of being read, so only a put of an artifact already past retention
can fall into that window; its reader then gets `ArtifactNotFound`, never other bytes.

Errors: every botocore failure is translated in `_translated` (one place): a connection
failure, a timeout, a 5xx or throttling is `StoreUnavailable` (retriable), another refusal
`StoreRejected`. Messages name the operation, the bucket and the S3 error code, never the
credentials or the server's own message text.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import botocore.config  # type: ignore[import-untyped]  # botocore ships no annotations
import botocore.exceptions  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]

from artifacts.errors import (
    ArtifactNotFound,
    InvalidArtifactId,
    StoreRejected,
    StoreUnavailable,
)
from artifacts.settings import S3Settings
from artifacts.store import ArtifactRef, artifact_id_of

__all__ = ["S3ArtifactStore"]

_ID = re.compile(r"[0-9a-f]{64}")
# Error codes that mean "not now" rather than "no" (S3 answers throttling with 503 SlowDown,
# some servers with 429 or a 4xx code).
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "ServiceUnavailable",
     "InternalError"}
)  # fmt: skip
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# A conditional write found the object there (412), or racing another write of it (409).
_PRESENT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
# What DeleteObjects takes at most per call.
_DELETE_BATCH = 1000


def _check_id(artifact_id: str) -> str:
    if not isinstance(artifact_id, str) or _ID.fullmatch(artifact_id) is None:
        raise InvalidArtifactId(f"artifact id must be 64 lowercase hex digits: {artifact_id!r:.80}")
    return artifact_id


class _Missing(Exception):
    """The object is not there (translated to ArtifactNotFound by the caller, which knows
    the id)."""


class _Present(Exception):
    """A write conditional on the object's absence found it there."""


class S3ArtifactStore:
    """Artifacts as objects in one bucket under one prefix; calls run in worker threads."""

    def __init__(self, settings: S3Settings) -> None:
        self._settings = settings
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def settings(self) -> S3Settings:
        return self._settings

    async def put(self, data: bytes, content_type: str) -> ArtifactRef:
        if not content_type or "\n" in content_type:
            raise ValueError("content_type must be a non-empty single line")
        return await asyncio.to_thread(self._put, bytes(data), content_type)

    async def get(self, artifact_id: str) -> bytes:
        key = self._key(_check_id(artifact_id))
        try:
            return await asyncio.to_thread(self._get, key)
        except _Missing:
            raise ArtifactNotFound(artifact_id) from None

    async def ref(self, artifact_id: str) -> ArtifactRef:
        key = self._key(_check_id(artifact_id))
        try:
            return await asyncio.to_thread(self._ref, artifact_id, key)
        except _Missing:
            raise ArtifactNotFound(artifact_id) from None

    async def exists(self, artifact_id: str) -> bool:
        key = self._key(_check_id(artifact_id))
        try:
            await asyncio.to_thread(self._head, key)
        except _Missing:
            return False
        return True

    async def delete(self, artifact_id: str) -> None:
        """Remove the artifact; deleting one that is not stored is not an error."""
        key = self._key(_check_id(artifact_id))
        with contextlib.suppress(_Missing):
            await asyncio.to_thread(self._call, "delete", "delete_object", Key=key)

    async def collect_garbage(self, retention_s: float, now: float | None = None) -> int:
        """Remove artifacts last stored more than `retention_s` seconds before `now`; returns
        how many. Objects under the prefix that are not artifacts are left alone."""
        if retention_s < 0:
            raise ValueError("retention_s must not be negative")
        cutoff = (time.time() if now is None else now) - retention_s
        return await asyncio.to_thread(self._collect, cutoff)

    # -- blocking halves, run in worker threads -------------------------------------------

    def _key(self, artifact_id: str) -> str:
        return f"{self._settings.prefix}{artifact_id}"

    def _s3(self) -> Any:
        with self._client_lock:
            if self._client is None:
                s = self._settings
                config = botocore.config.Config(
                    region_name=s.region,
                    s3={"addressing_style": "path" if s.path_style else "auto"},
                    # One attempt: the caller decides about retries (see the module docstring).
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                    # Checksums only where S3 requires them: several S3-compatible servers
                    # refuse the newer default trailing checksums.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    max_pool_connections=32,
                )
                self._client = botocore.session.get_session().create_client(
                    "s3",
                    endpoint_url=s.endpoint_url,
                    aws_access_key_id=s.access_key_id,
                    aws_secret_access_key=s.secret_access_key,
                    config=config,
                )
            return self._client

    def _call(self, operation: str, method: str, **kwargs: Any) -> Any:
        with self._translated(operation):
            return getattr(self._s3(), method)(Bucket=self._settings.bucket, **kwargs)

    @contextlib.contextmanager
    def _translated(self, operation: str) -> Iterator[None]:
        """The one place botocore's failures become this package's errors."""
        where = f"S3 {operation} in bucket {self._settings.bucket!r}"
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "unknown"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in _MISSING_CODES:
                raise _Missing from None
            if code in _PRESENT_CODES:
                raise _Present from None
            message = f"{where} failed: {code} (HTTP {status or 'unknown'})"
            if status >= 500 or status in (408, 429) or code in _TRANSIENT_CODES:
                raise StoreUnavailable(message) from exc
            raise StoreRejected(message) from exc
        except (
            botocore.exceptions.NoCredentialsError,
            botocore.exceptions.PartialCredentialsError,
        ) as exc:
            raise StoreRejected(f"{where}: no complete S3 credentials configured") from exc
        except (
            botocore.exceptions.ConnectionError,
            botocore.exceptions.HTTPClientError,
            botocore.exceptions.ResponseStreamingError,
        ) as exc:
            raise StoreUnavailable(f"{where} failed: {type(exc).__name__}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            # A client-side failure we do not classify: a configuration problem, not a blip.
            raise StoreRejected(f"{where} failed: {type(exc).__name__}") from exc

    def _head(self, key: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._call("head", "head_object", Key=key)
        return answer

    def _ref(self, artifact_id: str, key: str) -> ArtifactRef:
        head = self._head(key)
        return ArtifactRef(
            id=artifact_id,
            content_type=str(head.get("ContentType") or "application/octet-stream"),
            size=int(head["ContentLength"]),
        )

    def _get(self, key: str) -> bytes:
        answer = self._call("get", "get_object", Key=key)
        with self._translated("get"):
            body: bytes = answer["Body"].read()
        return body

    def _put(self, data: bytes, content_type: str) -> ArtifactRef:
        artifact_id = artifact_id_of(data)
        key = self._key(artifact_id)
        try:
            self._call(
                "put",
                "put_object",
                Key=key,
                Body=data,
                ContentType=content_type,
                # Only when absent: a concurrent put of the same bytes keeps its content type.
                IfNoneMatch="*",
            )
            return ArtifactRef(id=artifact_id, content_type=content_type, size=len(data))
        except _Present:
            return self._renew(artifact_id, key, data, content_type)

    def _renew(self, artifact_id: str, key: str, data: bytes, content_type: str) -> ArtifactRef:
        """Renew a stored artifact's age, keeping its first content type.

        The bytes are written again rather than the object copied onto itself: a copy in
        place renews Last-Modified on AWS, but not on every S3-compatible server (versitygw's
        posix backend keeps the file's time), and the bytes are at hand anyway."""
        try:
            kept = self._ref(artifact_id, key).content_type
        except _Missing:
            # Collected between the conditional write and now: stored anew with this type.
            kept = content_type
        self._call("put", "put_object", Key=key, Body=data, ContentType=kept)
        return ArtifactRef(id=artifact_id, content_type=kept, size=len(data))

    def _collect(self, cutoff: float) -> int:
        removed = 0
        prefix = self._settings.prefix
        token: str | None = None
        while True:
            page_args: dict[str, Any] = {"Prefix": prefix}
            if token is not None:
                page_args["ContinuationToken"] = token
            page = self._call("collect", "list_objects_v2", **page_args)
            old = [
                entry["Key"]
                for entry in page.get("Contents", ())
                if _ID.fullmatch(entry["Key"][len(prefix) :])
                and _timestamp(entry["LastModified"]) < cutoff
            ]
            for start in range(0, len(old), _DELETE_BATCH):
                batch = old[start : start + _DELETE_BATCH]
                answer = self._call(
                    "collect",
                    "delete_objects",
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
                removed += len(batch) - len(answer.get("Errors", ()))
            if not page.get("IsTruncated"):
                return removed
            token = page.get("NextContinuationToken")


def _timestamp(value: datetime) -> float:
    return value.timestamp()
