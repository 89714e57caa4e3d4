"""The signed artifact link route and the artifact sweep, on the ASGI app itself: each answer
of the route's table (bytes, refusals, store down) and the sweep's collection and log line."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from artifacts import LocalArtifactStore, sign
from artifacts.links import LINK_PATH
from artifacts.s3 import S3ArtifactStore
from artifacts.settings import ArtifactSettings, S3Settings
from core.redact import Redactor
from proxy.artifact_links import ArtifactLinks
from services import S3Server

KEY = "artifact-link-test-signing-key"
PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100
NOW = 1_900_000_000.0


async def _inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What the proxy behind the route would answer: a marker, to see what passed through."""
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"inner"})


def _settings(root: Path, **changes: Any) -> ArtifactSettings:
    return ArtifactSettings(root=str(root), signing_key=KEY, **changes)


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


@pytest.fixture
async def client(store: LocalArtifactStore, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the route over the local store, its clock fixed at NOW."""
    app = ArtifactLinks(
        _inner,
        _settings(tmp_path),
        redactor=Redactor(),
        sweep=False,
        store=store,
        clock=lambda: NOW,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


def _link(artifact_id: str, expires: float = NOW + 600) -> str:
    return f"{LINK_PATH}{artifact_id}{sign(artifact_id, expires, KEY.encode())}"


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


async def test_a_signed_link_answers_the_bytes_with_their_type(
    client: httpx.AsyncClient, store: LocalArtifactStore
) -> None:
    """GET of a valid link answers the bytes, their type and length, inline, cacheable until
    the link expires."""
    ref = await store.put(PNG, "image/png")
    response = await client.get(_link(ref.id, NOW + 600))
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(PNG))
    assert response.headers["content-disposition"] == f'inline; filename="{ref.id}.png"'
    assert response.headers["cache-control"] == "private, max-age=600, immutable"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_head_answers_the_headers_without_the_bytes(
    client: httpx.AsyncClient, store: LocalArtifactStore
) -> None:
    """HEAD of a valid link answers the type and length of the artifact and no body."""
    ref = await store.put(PNG, "image/png")
    response = await client.head(_link(ref.id))
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(PNG))
    assert response.content == b""


async def test_a_known_etag_is_answered_not_modified(
    client: httpx.AsyncClient, store: LocalArtifactStore
) -> None:
    """A client holding the bytes (If-None-Match: the id) gets a 304 without them."""
    ref = await store.put(PNG, "image/png")
    response = await client.get(_link(ref.id), headers={"if-none-match": f'"{ref.id}"'})
    assert response.status_code == 304
    assert response.content == b""


async def test_a_tampered_signature_is_forbidden(
    client: httpx.AsyncClient, store: LocalArtifactStore
) -> None:
    """A link whose signature was edited is a 403 invalid_signature in OpenAI's shape."""
    ref = await store.put(PNG, "image/png")
    link = _link(ref.id)
    tampered = link[:-1] + ("0" if link[-1] != "0" else "1")
    response = await client.get(tampered)
    assert response.status_code == 403
    assert _error(response)["code"] == "invalid_signature"


async def test_a_link_for_another_artifact_is_forbidden(
    client: httpx.AsyncClient, store: LocalArtifactStore
) -> None:
    """A signature made for one artifact opens no other one."""
    first = await store.put(PNG, "image/png")
    second = await store.put(b"other bytes", "image/png")
    query = _link(first.id).partition("?")[2]
    response = await client.get(f"{LINK_PATH}{second.id}?{query}")
    assert response.status_code == 403


async def test_an_expired_link_is_forbidden_and_says_so(
    client: httpx.AsyncClient, store: LocalArtifactStore
) -> None:
    """A genuine link past its expiry is a 403 link_expired whose message says expired."""
    ref = await store.put(PNG, "image/png")
    response = await client.get(_link(ref.id, NOW - 1))
    assert response.status_code == 403
    assert _error(response)["code"] == "link_expired"
    assert "expired" in _error(response)["message"]


async def test_a_link_without_its_query_is_forbidden(
    client: httpx.AsyncClient, store: LocalArtifactStore
) -> None:
    """No expiry or signature is a malformed signature, not a free pass."""
    ref = await store.put(PNG, "image/png")
    assert (await client.get(f"{LINK_PATH}{ref.id}")).status_code == 403


async def test_a_missing_artifact_is_not_found(client: httpx.AsyncClient) -> None:
    """A genuine link to an artifact that is not stored is a 404 artifact_not_found."""
    response = await client.get(_link("ab" * 32))
    assert response.status_code == 404
    assert _error(response)["code"] == "artifact_not_found"


async def test_a_malformed_id_is_a_bad_request(client: httpx.AsyncClient) -> None:
    """An id that is no sha256 digest is a 400 naming the artifact_id parameter."""
    response = await client.get(f"{LINK_PATH}..%2F..%2Fetc%2Fpasswd?expires=1&signature=00")
    assert response.status_code == 400
    assert _error(response)["param"] == "artifact_id"


async def test_other_paths_and_methods_pass_through(client: httpx.AsyncClient) -> None:
    """Only GET and HEAD under the link path are the route's; the rest reaches the proxy."""
    assert (await client.get("/v1/models")).status_code == 299
    assert (await client.post(_link("ab" * 32))).status_code == 299


async def test_links_are_not_found_without_a_signing_key(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    """With no signing key configured, every link is a 404, even for a stored artifact."""
    ref = await store.put(PNG, "image/png")
    settings = ArtifactSettings(root=str(tmp_path))
    app = ArtifactLinks(_inner, settings, redactor=Redactor(), sweep=False, store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        response = await http.get(_link(ref.id, time.time() + 600))
    assert response.status_code == 404
    assert "not enabled" in _error(response)["message"]


async def test_a_store_that_is_down_is_a_retriable_503(tmp_path: Path) -> None:
    """An S3 store that does not answer is a 503 with Retry-After, not a 500."""
    s3 = S3Settings(
        bucket="down-bucket",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        access_key_id="key-id",
        secret_access_key="down-store-secret-value",
    )
    settings = _settings(tmp_path, backend="s3", s3=s3)
    app = ArtifactLinks(_inner, settings, redactor=Redactor(), sweep=False)
    assert isinstance(app._store, S3ArtifactStore)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        response = await http.get(_link("ab" * 32, time.time() + 600))
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert "down-store-secret-value" not in response.text


async def test_the_sweep_collects_old_artifacts_and_logs_how_many(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    """With the sweep on, artifacts past retention are removed, fresh ones kept, and the
    count is logged."""
    old = await store.put(b"old bytes", "image/png")
    fresh = await store.put(PNG, "image/png")
    long_ago = time.time() - 7200
    os.utime(store.root / old.id[:2] / old.id, (long_ago, long_ago))
    settings = _settings(tmp_path, retention_s=3600.0, gc_interval_s=3600.0)
    links = ArtifactLinks(_inner, settings, redactor=Redactor(), sweep=True, store=store)
    with capture_logs() as logs:
        await links.start()
        try:
            # The first collection runs as the sweep starts; give it up to 30 s on a busy box.
            for _ in range(3000):
                if any(entry["event"] == "artifacts_collected" for entry in logs):
                    break
                await asyncio.sleep(0.01)
        finally:
            await links.stop()
    assert not await store.exists(old.id)
    assert await store.exists(fresh.id)
    collected = [entry for entry in logs if entry["event"] == "artifacts_collected"]
    assert collected[0]["removed"] == 1


async def test_links_are_served_from_an_s3_store(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """With the S3 backend, a link answers the bytes and type stored in the bucket."""
    s3 = S3Settings(
        bucket=s3_bucket,
        endpoint_url=s3_server.endpoint_url,
        region=s3_server.region,
        access_key_id=s3_server.access_key_id,
        secret_access_key=s3_server.secret_access_key,
    )
    settings = _settings(tmp_path, backend="s3", s3=s3)
    app = ArtifactLinks(_inner, settings, redactor=Redactor(), sweep=False)
    ref = await app._store.put(PNG, "image/png")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        response = await http.get(_link(ref.id, time.time() + 600))
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
