"""Signed artifact links and the artifact sweep through `gateway up`: a plain HTTP client
fetches a stored artifact by its link, forged, expired and dangling links are refused, the
running gateway collects an old artifact and keeps a fresh one, and without a configured
signing key `gateway up` generates one so links are served."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from gateway_process import GatewayProcess, gateway_up
from provider_setup import write_config

from artifacts import LocalArtifactStore, sign
from artifacts.links import LINK_PATH

MASTER_KEY = "sk-gw-artifact-links-up-test-key"
SIGNING_KEY = "artifact-links-up-signing-key-0123456789"
PNG = b"\x89PNG\r\n\x1a\n" + b"stored by a consumer" * 40
# The sweep runs this often in these tests (a week's retention is counted in hours here).
GC_INTERVAL_S = 0.5
RETENTION_S = 3600.0


@dataclass(frozen=True, slots=True)
class Running:
    gateway: GatewayProcess
    store: LocalArtifactStore


def _config(folder: Path) -> Path:
    def artifacts(data: dict[str, Any]) -> None:
        section = data["gateway_settings"]["artifacts"]
        section["root"] = str(folder / "artifacts")
        section["retention_s"] = RETENTION_S
        section["gc_interval_s"] = GC_INTERVAL_S

    return write_config(folder / "litellm_config.yaml", artifacts)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """`gateway up --no-kafka` with a signing key, and the local store it serves."""
    folder = tmp_path_factory.mktemp("artifact-links-up")
    config = _config(folder)
    env = {"GATEWAY_ARTIFACT_SIGNING_KEY": SIGNING_KEY}
    with gateway_up(config, master_key=MASTER_KEY, env=env) as gateway:
        yield Running(gateway, LocalArtifactStore(folder / "artifacts"))


def _link(artifact_id: str, expires: float) -> str:
    return f"{LINK_PATH}{artifact_id}{sign(artifact_id, expires, SIGNING_KEY.encode())}"


def test_a_stored_artifact_is_fetched_by_its_signed_link(running: Running) -> None:
    """A plain HTTP client without a gateway key gets the bytes and their content type."""
    ref = anyio.run(running.store.put, PNG, "image/png")
    response = httpx.get(running.gateway.url + _link(ref.id, time.time() + 600))
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"


def test_forged_expired_and_dangling_links_are_refused(running: Running) -> None:
    """A tampered signature and an expired link are 403s, a link to nothing a 404, each an
    OpenAI-shaped error."""
    ref = anyio.run(running.store.put, PNG, "image/png")
    good = _link(ref.id, time.time() + 600)
    tampered = good.replace("signature=", "signature=0", 1)[:-1]
    expired = _link(ref.id, time.time() - 5)
    missing = _link("cd" * 32, time.time() + 600)
    answers = {
        name: httpx.get(running.gateway.url + path)
        for name, path in {"tampered": tampered, "expired": expired, "missing": missing}.items()
    }
    assert answers["tampered"].status_code == 403
    assert answers["tampered"].json()["error"]["code"] == "invalid_signature"
    assert answers["expired"].status_code == 403
    assert "expired" in answers["expired"].json()["error"]["message"]
    assert answers["missing"].status_code == 404
    assert answers["missing"].json()["error"]["code"] == "artifact_not_found"


def test_the_running_gateway_collects_old_artifacts_and_keeps_fresh_ones(
    running: Running,
) -> None:
    """An artifact last stored beyond retention disappears at the next sweep; a fresh one
    stays, and the sweep's log line counts what it removed."""
    store = running.store
    old = anyio.run(store.put, b"an old try-on result", "image/png")
    fresh = anyio.run(store.put, b"a fresh try-on result", "image/png")
    long_ago = time.time() - 2 * RETENTION_S
    os.utime(store.root / old.id[:2] / old.id, (long_ago, long_ago))
    deadline = time.monotonic() + 60
    while anyio.run(store.exists, old.id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not anyio.run(store.exists, old.id)
    assert anyio.run(store.exists, fresh.id)
    assert "removed=1" in running.gateway.log.read_text()


def test_the_link_route_is_in_the_openapi_document(running: Running) -> None:
    """With links served, the gateway's document lists the route, with no security needed."""
    document = httpx.get(running.gateway.url + "/gateway/openapi.json").json()
    operation = document["paths"][f"{LINK_PATH}{{artifact_id}}"]["get"]
    assert operation["security"] == []


def test_gateway_up_generates_a_signing_key_when_none_is_set(tmp_path: Path) -> None:
    """Without GATEWAY_ARTIFACT_SIGNING_KEY, `gateway up` says it generated one and serves
    links: a forged one is refused as forged (403), not as switched off (404)."""
    config = _config(tmp_path)
    with gateway_up(config, master_key=MASTER_KEY) as gateway:
        forged = httpx.get(gateway.url + f"{LINK_PATH}{'ab' * 32}?expires=1&signature={'0' * 64}")
    assert any(
        "GATEWAY_ARTIFACT_SIGNING_KEY was not set; generated" in line for line in gateway.lines
    )
    assert forged.status_code == 403
