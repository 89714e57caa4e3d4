"""LoRA training as OpenAI fine-tuning jobs through the proxy, with the official openai SDK,
against the Fal emulator: create, retrieve, list, list_events, cancel, and using the LoRA."""

from __future__ import annotations

import io
import json
import socket
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image
from proxy_support import MASTER_KEY, SeededDatabase, ThreadedProxy, emulator_env, write_config
from test_proxy_images import fal, image_proxy, sdk

from emulators.testing import EmulatorHandle, FalHandle
from proxy.server import ProxyServer
from proxy.settings import build_settings

__all__ = ["fal", "image_proxy", "sdk"]  # fixtures shared with the image tests

TASK = "lora-training"


def _archive(*, images: int = 2) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        for index in range(images):
            picture = io.BytesIO()
            Image.new("RGB", (32, 32), (index * 40, 90, 160)).save(picture, format="PNG")
            zipped.writestr(f"look_{index}.png", picture.getvalue())
            zipped.writestr(f"look_{index}.txt", "a photo of sks jacket")
    return out.getvalue()


@pytest.fixture
def trainer(fal: FalHandle) -> Iterator[FalHandle]:
    """The Fal emulator with short training runs."""
    fal.set_timings(queue_s=0.05, run_s=0.05, training_s=0.4)
    yield fal


def _upload(sdk: openai.OpenAI, data: bytes) -> str:
    return sdk.files.create(file=("looks.zip", data, "application/zip"), purpose="fine-tune").id


def _create(sdk: openai.OpenAI, file_id: str) -> openai.types.fine_tuning.FineTuningJob:
    return sdk.fine_tuning.jobs.create(
        model=TASK, training_file=file_id, metadata={"trigger_word": "sks", "steps": "500"}
    )


def _until_done(sdk: openai.OpenAI, job_id: str) -> openai.types.fine_tuning.FineTuningJob:
    for _ in range(400):  # a bounded wait for the emulated run, not a timing assertion
        job = sdk.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


def test_a_job_trains_and_its_lora_generates_at_once(
    sdk: openai.OpenAI, trainer: FalHandle
) -> None:
    """create -> retrieve until succeeded; fine_tuned_model is a LoRA path generation accepts."""
    raw = sdk.fine_tuning.jobs.with_raw_response.create(
        model=TASK,
        training_file=_upload(sdk, _archive()),
        metadata={"trigger_word": "sks", "steps": "500"},
    )
    created = raw.parse()
    assert created.status == "queued"
    assert raw.headers["x-gateway-cost-usd"] == "1.000000"  # 500 steps at $2 per 1000
    done = _until_done(sdk, created.id)
    assert done.status == "succeeded"
    assert (done.fine_tuned_model or "").endswith(".safetensors")
    lora = [{"path": done.fine_tuned_model, "scale": 1.0}]
    trained = sdk.images.generate(
        model="image-generation",
        prompt="sks jacket",
        response_format="b64_json",
        extra_body={"loras": lora, "seed": 1},
    )
    plain = sdk.images.generate(
        model="image-generation",
        prompt="sks jacket",
        response_format="b64_json",
        extra_body={"seed": 1},
    )
    assert trained.data is not None and plain.data is not None
    assert trained.data[0].b64_json != plain.data[0].b64_json


def test_events_report_queue_progress_and_the_outcome(
    sdk: openai.OpenAI, trainer: FalHandle
) -> None:
    """list_events holds the submission, Fal's step logs as metrics, and the final state."""
    job = _create(sdk, _upload(sdk, _archive()))
    _until_done(sdk, job.id)
    events = sdk.fine_tuning.jobs.list_events(job.id, limit=100).data
    messages = [event.message for event in events]
    assert messages[0].startswith("Job succeeded")
    assert any(m.startswith("Submitted to fal") for m in messages)
    steps = [e.data for e in events if e.type == "metrics"]
    assert steps and all(isinstance(d, dict) and d["total_steps"] == 500 for d in steps)


def test_list_shows_created_jobs_newest_first(sdk: openai.OpenAI, trainer: FalHandle) -> None:
    """jobs.list returns the jobs created, the newest first."""
    file_id = _upload(sdk, _archive())
    first, second = _create(sdk, file_id), _create(sdk, file_id)
    listed = [job.id for job in sdk.fine_tuning.jobs.list(limit=50).data]
    assert listed.index(second.id) < listed.index(first.id)


def test_cancel_stops_the_fal_job_and_a_second_cancel_names_the_state(
    sdk: openai.OpenAI, trainer: FalHandle
) -> None:
    """Cancelling a queued job cancels it on Fal; cancelling it again is a 400 naming its state."""
    trainer.set_timings(queue_s=30)
    job = _create(sdk, _upload(sdk, _archive()))
    assert sdk.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    assert trainer.queue_stats()["cancels"] == 1
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.fine_tuning.jobs.cancel(job.id)
    assert "cancelled" in caught.value.message


def test_a_transient_status_failure_leaves_the_job_as_it_was(
    sdk: openai.OpenAI, trainer: FalHandle
) -> None:
    """A 503 while looking the job up changes nothing; the job still finishes."""
    job = _create(sdk, _upload(sdk, _archive()))
    trainer.set_queue_fault("status", "503", count=1)
    looked = sdk.fine_tuning.jobs.retrieve(job.id)
    assert looked.status in ("queued", "running")
    assert looked.error is None
    assert _until_done(sdk, job.id).status == "succeeded"
    assert trainer.queue_stats()["jobs"] == 1


def test_an_unknown_job_is_a_404(sdk: openai.OpenAI, trainer: FalHandle) -> None:
    """Retrieving a job id the gateway never issued answers 404."""
    with pytest.raises(openai.NotFoundError):
        sdk.fine_tuning.jobs.retrieve("ftjob-0123456789abcdef01234567")


@pytest.mark.parametrize(
    "archive", [b"this is not a zip", _archive(images=0)], ids=["not-a-zip", "no-images"]
)
def test_bad_archives_are_400s_before_any_fal_call(
    sdk: openai.OpenAI, trainer: FalHandle, archive: bytes
) -> None:
    """A training file that is not a zip, or holds no images, is refused; Fal sees nothing."""
    with pytest.raises(openai.BadRequestError) as caught:
        _create(sdk, _upload(sdk, archive))
    assert caught.value.param == "training_file"
    assert trainer.queue_stats()["jobs"] == 0


@pytest.fixture(scope="module")
def hook_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
    fal_emulator: FalHandle,
    key_database: SeededDatabase,
) -> Iterator[ThreadedProxy]:
    """A proxy whose training jobs are completed by Fal's signed callbacks, not by polling."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    keys = [k["x"] for k in httpx.get(f"{fal_emulator.url}/.well-known/jwks.json").json()["keys"]]

    def configure(data: dict[str, Any]) -> None:
        data["gateway_settings"]["keys"] = {"database_url": key_database.url, "refresh_ms": 50}
        data["gateway_settings"]["media"]["webhooks"] = {
            "callback_url": f"http://127.0.0.1:{port}/gateway/webhooks/fal",
            "keys": keys,
        }

    config = write_config(tmp_path_factory.mktemp("hooks") / "litellm_config.yaml", configure)
    env = emulator_env(anthropic_emulator, openai_emulator, gemini_emulator)
    env |= {
        "GATEWAY_KEY_ENCRYPTION_KEY": key_database.kek,
        "FAL_KEY": "fal-test-key-4b1c:secret",
        "FAL_API_BASE": fal_emulator.url,
    }
    settings = build_settings(config, env, master_key=MASTER_KEY)
    running = ThreadedProxy(ProxyServer(settings, port=port))
    running.start()
    yield running
    running.stop()


def test_a_signed_callback_completes_the_job_once(
    hook_proxy: ThreadedProxy, trainer: FalHandle
) -> None:
    """Fal's callback marks the job succeeded; delivering it again changes nothing."""
    with openai.OpenAI(
        base_url=f"{hook_proxy.url}/v1", api_key=MASTER_KEY, max_retries=0
    ) as client:
        job = _create(client, _upload(client, _archive()))
        for _ in range(500):  # a bounded wait for the emulator's callback
            if any(code == 200 for _, _, code in trainer.queue_stats()["webhooks"]):
                break
            time.sleep(0.02)
        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.status == "succeeded"
        assert (done.fine_tuned_model or "").endswith(".safetensors")
        runtime = trainer.server.app.state.emulator_runtime
        request_id = trainer.queue_stats()["webhooks"][-1][0]
        raw = json.dumps({"request_id": request_id, "status": "ERROR", "payload": None}).encode()
        again = httpx.post(
            f"{hook_proxy.url}/gateway/webhooks/fal",
            content=raw,
            headers=runtime.webhooks.headers(request_id, raw),
        )
        assert again.json()["duplicate"] is True
        after = client.fine_tuning.jobs.retrieve(job.id)
        events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert after.status == "succeeded"
    assert [e.message for e in events].count("Callback received from fal") == 1


def test_an_unsigned_callback_is_refused(hook_proxy: ThreadedProxy, trainer: FalHandle) -> None:
    """A callback without a valid signature is answered 401 and applied to nothing."""
    raw = json.dumps({"request_id": "forged", "status": "OK", "payload": {}}).encode()
    headers = {
        "x-fal-webhook-request-id": "forged",
        "x-fal-webhook-user-id": "someone",
        "x-fal-webhook-timestamp": str(int(time.time())),
        "x-fal-webhook-signature": "00" * 64,
    }
    response = httpx.post(f"{hook_proxy.url}/gateway/webhooks/fal", content=raw, headers=headers)
    assert response.status_code == 401


# A multipart body whose only part has no headers (no Content-Disposition): what a fuzzer sent.
_HEADERLESS_PART = (
    b"--b0undary\r\n[[225, 'FIELDS', 'x'], [], {'k': [true, -2966032]}]--b0undary--\r\n"
)


@pytest.mark.parametrize("path", ["/files", "/videos", "/images/edits"])
def test_a_form_that_does_not_parse_is_a_400(sdk: openai.OpenAI, path: str) -> None:
    """Every multipart route answers a malformed form with the caller's 400, not a 500."""
    response = httpx.post(
        f"{str(sdk.base_url).rstrip('/')}{path}",
        content=_HEADERLESS_PART,
        headers={
            "authorization": f"Bearer {MASTER_KEY}",
            "content-type": "multipart/form-data; boundary=b0undary",
        },
        timeout=30,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "multipart form" in error["message"]
