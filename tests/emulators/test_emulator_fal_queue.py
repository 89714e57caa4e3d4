"""The Fal emulator's queue protocol over raw HTTP: status codes, shapes, stream and faults."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from emulators.testing import FalHandle

AUTH = {"authorization": "Key fal-test-key"}


@pytest.fixture
def fal(fal_emulator: FalHandle) -> Iterator[FalHandle]:
    """The plain-HTTP Fal emulator with short jobs, reset after the test."""
    fal_emulator.set_timings(queue_s=0.2, run_s=0.2)
    yield fal_emulator
    fal_emulator.reset()


def _submit(fal: FalHandle, body: dict[str, object]) -> dict[str, str]:
    response = httpx.post(f"{fal.url}/fal-ai/flux-lora", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    reply: dict[str, str] = response.json()
    return reply


def test_status_is_202_with_logs_key_until_completed_then_200(fal: FalHandle) -> None:
    """Every status answer carries `logs` (null unless asked); 202 until COMPLETED, then 200."""
    job = _submit(fal, {"prompt": "a knit sweater"})
    codes, bodies = [], []
    with httpx.Client(headers=AUTH) as client:
        while True:
            response = client.get(job["status_url"], params={"logs": "false"})
            codes.append(response.status_code)
            bodies.append(response.json())
            if bodies[-1]["status"] == "COMPLETED":
                break
    assert all("logs" in body and body["logs"] is None for body in bodies)
    assert set(codes[:-1]) == {202}
    assert codes[-1] == 200
    assert bodies[0]["status"] == "IN_QUEUE"
    assert bodies[0]["queue_position"] == 0


def test_status_stream_sends_each_state_and_closes_after_completed(fal: FalHandle) -> None:
    """The SSE status stream sends IN_QUEUE, IN_PROGRESS (with logs), COMPLETED, then ends."""
    job = _submit(fal, {"prompt": "a leather bag"})
    states = []
    with httpx.stream(
        "GET", job["status_url"] + "/stream", params={"logs": "1"}, headers=AUTH
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                states.append(json.loads(line[6:]))
    names = [s["status"] for s in states]
    assert names[0] == "IN_QUEUE"
    assert "IN_PROGRESS" in names
    assert names[-1] == "COMPLETED"
    assert states[-1]["logs"][-1]["message"] == "Inference completed"


def test_result_before_completion_is_refused(fal: FalHandle) -> None:
    """Fetching the result of a job still queued answers 400 'still in progress'."""
    fal.set_timings(queue_s=5.0)
    job = _submit(fal, {"prompt": "a hat"})
    response = httpx.get(job["response_url"], headers=AUTH)
    assert response.status_code == 400
    assert response.json()["detail"] == "Request is still in progress"


def test_sync_mode_returns_images_as_data_uris(fal: FalHandle) -> None:
    """With sync_mode the result carries each image inline as a decodable data URI."""
    fal.set_timings(queue_s=0, run_s=0)
    job = _submit(fal, {"prompt": "boots", "sync_mode": True, "image_size": "square"})
    result = httpx.get(job["response_url"], headers=AUTH).json()
    url = result["images"][0]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.size == (512, 512)


def test_missing_key_is_401_in_fal_shape(fal: FalHandle) -> None:
    """A submit without a key answers 401 with a `detail` message."""
    response = httpx.post(f"{fal.url}/fal-ai/flux-lora", json={"prompt": "x"})
    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)


def test_unknown_application_is_404(fal: FalHandle) -> None:
    """Submitting to an application the emulator does not serve answers 404."""
    response = httpx.post(f"{fal.url}/fal-ai/nope", json={"prompt": "x"}, headers=AUTH)
    assert response.status_code == 404


def test_missing_prompt_fails_the_job_with_a_422_result(fal: FalHandle) -> None:
    """The queue accepts any input; the result of an invalid one is Fal's 422 detail list."""
    fal.set_timings(queue_s=0, run_s=0)
    job = _submit(fal, {"num_images": 9})
    response = httpx.get(job["response_url"], headers=AUTH)
    assert response.status_code == 422
    locations = [entry["loc"] for entry in response.json()["detail"]]
    assert ["body", "prompt"] in locations
    assert ["body", "num_images"] in locations


@pytest.mark.parametrize("operation", ["status", "result"])
def test_faults_apply_to_one_queue_operation_only(fal: FalHandle, operation: str) -> None:
    """A fault set for one operation fails that operation once and leaves submit alone."""
    fal.set_timings(queue_s=0, run_s=0)
    fal.set_queue_fault(operation, "502", count=1)
    job = _submit(fal, {"prompt": "a belt"})
    url = job["status_url"] if operation == "status" else job["response_url"]
    failed = httpx.get(url, headers=AUTH)
    assert failed.status_code == 502
    assert failed.json()["error_type"] == failed.headers["x-fal-error-type"]
    assert httpx.get(url, headers=AUTH).status_code == 200


def test_cancel_after_completion_names_the_state(fal: FalHandle) -> None:
    """Cancelling a completed job answers ALREADY_COMPLETED."""
    fal.set_timings(queue_s=0, run_s=0)
    job = _submit(fal, {"prompt": "a scarf"})
    response = httpx.put(job["cancel_url"], headers=AUTH)
    assert response.status_code == 400
    assert response.json()["status"] == "ALREADY_COMPLETED"
