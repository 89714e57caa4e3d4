"""The Fal emulator's completion callbacks: signed with its JWKS key, retried until a 2xx."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators import EmulatorServer
from emulators.testing import FalHandle
from plugins.fal.webhooks import verify_callback

AUTH = {"authorization": "Key fal-test-key"}


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A local callback receiver that answers 500 to the first delivery, then 200."""
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return JSONResponse({}, status_code=500 if len(received) == 1 else 200)

    server = EmulatorServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    server.start()
    yield f"{server.url}/hook", received
    server.stop()


def test_callbacks_are_signed_and_retried_until_accepted(
    fal_emulator: FalHandle, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    """A job submitted with fal_webhook is delivered again after a 500; each delivery verifies
    against the emulator's published JWKS."""
    url, received = receiver
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0, run_s=0)
    fal_emulator.configure_fal(webhook_retry_s=0.01)
    job = httpx.post(
        f"{fal_emulator.url}/fal-ai/flux-lora",
        params={"fal_webhook": url},
        json={"prompt": "a cardigan"},
        headers=AUTH,
    ).json()
    for _ in range(500):  # a bounded wait for the background deliveries
        if len(received) >= 2:
            break
        time.sleep(0.01)
    keys = [k["x"] for k in httpx.get(f"{fal_emulator.url}/.well-known/jwks.json").json()["keys"]]
    callbacks = [verify_callback(h, b, keys, now=time.time()) for h, b in received]
    assert [c.request_id for c in callbacks] == [job["request_id"]] * 2
    assert callbacks[-1].ok
    assert callbacks[-1].payload["prompt"] == "a cardigan"
    fal_emulator.reset()
