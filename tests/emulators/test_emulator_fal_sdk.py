"""The Fal emulator as the official fal-client 1.0.3 sees it: HTTPS submit, status, result.

fal-client reads its queue host from FAL_QUEUE_RUN_HOST when it is imported and always submits
over HTTPS, so the emulator serves TLS with a throw-away CA that SSL_CERT_FILE makes trusted.
"""

from __future__ import annotations

import importlib
import io
import os
import sys
import zipfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from PIL import Image

from emulators.testing import FalHandle

MODEL = "fal-ai/flux-lora"
LORA_A = [{"path": "https://example.com/loras/denim.safetensors", "scale": 0.8}]
LORA_B = [
    {"path": "https://example.com/loras/denim.safetensors", "scale": 0.8},
    {"path": "https://example.com/loras/studio-light.safetensors", "scale": 1.2},
]


@pytest.fixture(scope="module")
def fal_module(fal_tls_emulator: FalHandle) -> ModuleType:
    """fal_client imported with its queue host pointed at the HTTPS emulator."""
    host = fal_tls_emulator.url.removeprefix("https://")
    # The emulator serves the synchronous endpoint (fal.run) under /run on the same port.
    os.environ["FAL_RUN_HOST"] = f"{host}/run"
    os.environ["FAL_QUEUE_RUN_HOST"] = host
    if "fal_client" in sys.modules:
        # The host is read at import: a copy imported earlier must read it again.
        importlib.reload(sys.modules["fal_client.auth"])
        importlib.reload(sys.modules["fal_client.client"])
        return importlib.reload(sys.modules["fal_client"])
    return importlib.import_module("fal_client")


@pytest.fixture
def fal(
    fal_module: ModuleType, fal_tls_emulator: FalHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A fresh fal_client.SyncClient that trusts the emulator's CA; the emulator is reset."""
    monkeypatch.setenv("SSL_CERT_FILE", str(fal_tls_emulator.ca_file))
    fal_tls_emulator.reset()
    fal_tls_emulator.set_timings(queue_s=0.05, run_s=0.15)
    yield fal_module.SyncClient(key="fal-test-key:secret")
    fal_tls_emulator.reset()


def _decode(url: str) -> Image.Image:
    response = httpx.get(url)  # trusts SSL_CERT_FILE, set by the fixture
    response.raise_for_status()
    return Image.open(io.BytesIO(response.content))


def test_subscribe_returns_decodable_images_of_the_requested_size(fal: Any) -> None:
    """subscribe() goes through the queue and yields real PNGs of the asked width and height."""
    result = fal.subscribe(
        MODEL,
        {
            "prompt": "a denim jacket on a mannequin",
            "loras": LORA_A,
            "image_size": {"width": 320, "height": 256},
            "num_images": 2,
            "seed": 7,
            "output_format": "png",
        },
    )
    assert len(result["images"]) == 2
    assert result["seed"] == 7
    assert result["has_nsfw_concepts"] == [False, False]
    image = _decode(result["images"][0]["url"])
    assert image.format == "PNG"
    assert image.size == (320, 256)


def test_run_answers_synchronously(fal: Any) -> None:
    """run() posts to the synchronous endpoint and gets the result without the queue."""
    result = fal.run(MODEL, {"prompt": "a linen dress", "image_size": "square", "seed": 2})
    assert result["seed"] == 2
    assert _decode(result["images"][0]["url"]).size == (512, 512)


def test_status_moves_from_queue_through_progress_to_completed(fal: Any) -> None:
    """Polling a submitted job sees IN_QUEUE with a position, IN_PROGRESS with logs, COMPLETED."""
    import fal_client  # noqa: PLC0415 - imported by the fixture with the emulator's host

    handle = fal.submit(MODEL, {"prompt": "silk scarf", "image_size": "square"})
    seen = list(handle.iter_events(with_logs=True, interval=0.01))
    kinds = [type(status) for status in seen]
    assert kinds[0] is fal_client.Queued
    assert seen[0].position == 0
    assert fal_client.InProgress in kinds
    progress = next(s for s in seen if isinstance(s, fal_client.InProgress))
    assert progress.logs and progress.logs[0]["message"]
    assert isinstance(seen[-1], fal_client.Completed)
    assert seen[-1].metrics["inference_time"] is not None


def test_status_and_result_work_by_request_id(fal: Any) -> None:
    """status() and result() by application and request id use the same queue URLs."""
    import fal_client  # noqa: PLC0415

    handle = fal.submit(MODEL, {"prompt": "linen shirt", "image_size": "square"})
    handle.get(interval=0.01)
    status = fal.status(MODEL, handle.request_id, with_logs=True)
    assert isinstance(status, fal_client.Completed)
    assert status.logs
    assert fal.result(MODEL, handle.request_id)["prompt"] == "linen shirt"


def test_images_follow_prompt_seed_and_loras(fal: Any) -> None:
    """The same prompt, seed and LoRAs give the same image; another LoRA set gives another."""
    args = {"prompt": "wool coat", "seed": 3, "image_size": "square", "output_format": "png"}
    first = _decode(fal.subscribe(MODEL, {**args, "loras": LORA_A})["images"][0]["url"])
    again = _decode(fal.subscribe(MODEL, {**args, "loras": LORA_A})["images"][0]["url"])
    other = _decode(fal.subscribe(MODEL, {**args, "loras": LORA_B})["images"][0]["url"])
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_invalid_input_raises_fal_422_detail(fal: Any) -> None:
    """A LoRA scale out of range comes back as Fal's 422 with a pydantic-style detail list."""
    import fal_client  # noqa: PLC0415

    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        fal.subscribe(MODEL, {"prompt": "x", "loras": [{"path": "https://a/b", "scale": 9}]})
    assert caught.value.status_code == 422
    detail = caught.value.response.json()["detail"]
    assert detail[0]["loc"] == ["body", "loras", 0, "scale"]


def test_submit_fault_reaches_the_client_with_its_error_type(
    fal: Any, fal_tls_emulator: FalHandle
) -> None:
    """A 503 injected on submit is raised by fal-client with Fal's error_type."""
    import fal_client  # noqa: PLC0415

    fal_tls_emulator.set_queue_fault("submit", "503", count=1)
    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        fal.submit(MODEL, {"prompt": "x"})
    assert caught.value.status_code == 503
    assert caught.value.error_type == "runner_disconnected"


def test_status_429s_are_retried_by_the_client_until_done(
    fal: Any, fal_tls_emulator: FalHandle
) -> None:
    """Two 429s while polling are absorbed by fal-client's own retries; the job completes."""
    handle = fal.submit(MODEL, {"prompt": "cotton tee", "image_size": "square"})
    fal_tls_emulator.set_queue_fault("status", "429:retry-after=0", count=2)
    assert handle.get(interval=0.01)["prompt"] == "cotton tee"
    assert fal_tls_emulator.stats()["faults_served"] == 2


def test_cancel_of_a_queued_job_is_accepted(fal: Any, fal_tls_emulator: FalHandle) -> None:
    """cancel() on a job still waiting succeeds, and its result then reports the cancellation."""
    import fal_client  # noqa: PLC0415

    fal_tls_emulator.set_timings(queue_s=5.0)
    handle = fal.submit(MODEL, {"prompt": "velvet dress"})
    handle.cancel()
    assert fal_tls_emulator.queue_stats()["cancels"] == 1
    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        handle.get(interval=0.01)
    assert caught.value.status_code == 400


def _png_bytes(
    size: tuple[int, int], mode: str = "RGB", colour: int | tuple[int, ...] = 0
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def uploads(
    fal_module: ModuleType, fal_tls_emulator: FalHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fal-client's storage hosts (module constants, no setting exists) pointed at the emulator."""
    monkeypatch.setattr(fal_module.client, "REST_URL", fal_tls_emulator.url)
    monkeypatch.setattr(fal_module.client, "CDN_URL", fal_tls_emulator.url)


def test_upload_returns_a_url_that_serves_the_bytes(fal: Any, uploads: None) -> None:
    """upload() takes a CDN token and posts the bytes; the access URL serves them back."""
    url = fal.upload(b"zip bytes here", "application/zip", file_name="looks.zip")
    assert url.endswith("/looks.zip")
    assert httpx.get(url).content == b"zip bytes here"


def test_inpainting_with_uploaded_image_and_mask(fal: Any, uploads: None) -> None:
    """An image and mask uploaded through fal-client are inpainted: only the white area changes."""
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    mask_png = io.BytesIO()
    mask.save(mask_png, format="PNG")
    result = fal.subscribe(
        "fal-ai/flux-lora/inpainting",
        {
            "prompt": "a red collar",
            "image_url": fal.upload(_png_bytes((64, 64), colour=(0, 100, 0)), "image/png"),
            "mask_url": fal.upload(mask_png.getvalue(), "image/png"),
            "strength": 1.0,
            "output_format": "png",
        },
    )
    edited = _decode(result["images"][0]["url"]).convert("RGB")
    assert edited.getpixel((50, 5)) == (0, 100, 0)
    assert edited.getpixel((5, 5)) != (0, 100, 0)


def test_lora_training_from_an_uploaded_zip(
    fal: Any, uploads: None, fal_tls_emulator: FalHandle
) -> None:
    """flux-lora-fast-training on an uploaded zip yields a LoRA file, logging its steps."""
    import fal_client  # noqa: PLC0415

    fal_tls_emulator.set_timings(training_s=0.3)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("a.png", _png_bytes((16, 16)))
    url = fal.upload(archive.getvalue(), "application/zip", file_name="looks.zip")
    updates: list[Any] = []
    result = fal.subscribe(
        "fal-ai/flux-lora-fast-training",
        {"images_data_url": url, "trigger_word": "sks", "steps": 200},
        with_logs=True,
        on_queue_update=updates.append,
    )
    assert result["diffusers_lora_file"]["url"].endswith(".safetensors")
    logs = [
        log["message"]
        for u in updates
        if isinstance(u, fal_client.InProgress)
        for log in u.logs or []
    ]
    assert any("Training step" in line and "/200" in line for line in logs)


def test_face_detection_boxes_fit_the_uploaded_image(fal: Any, uploads: None) -> None:
    """Moondream3 detect answers normalised boxes (min < max, inside 0..1) for the image sent."""
    url = fal.upload(_png_bytes((320, 160), colour=(200, 170, 150)), "image/png")
    result = fal.subscribe("fal-ai/moondream3-preview/detect", {"image_url": url, "prompt": "face"})
    assert result["objects"]
    for box in result["objects"]:
        assert 0 <= box["x_min"] < box["x_max"] <= 1
        assert 0 <= box["y_min"] < box["y_max"] <= 1
        # Square in pixels: the normalised width is half the height on a 2:1 image.
        width_px = (box["x_max"] - box["x_min"]) * 320
        height_px = (box["y_max"] - box["y_min"]) * 160
        assert abs(width_px - height_px) < 1


def test_segmentation_mask_is_a_png_of_the_input_size_honouring_the_box(
    fal: Any, uploads: None
) -> None:
    """SAM-3 with a box prompt answers a PNG mask of the input's size, white inside the box."""
    url = fal.upload(_png_bytes((120, 80)), "image/png")
    result = fal.subscribe(
        "fal-ai/sam-3/image",
        {
            "image_url": url,
            "box_prompts": [{"x_min": 10, "y_min": 10, "x_max": 50, "y_max": 70}],
            "include_scores": True,
        },
    )
    mask = _decode(result["masks"][0]["url"])
    assert (mask.format, mask.size) == ("PNG", (120, 80))
    assert mask.convert("L").getpixel((30, 40)) == 255
    assert mask.convert("L").getpixel((100, 40)) == 0
    assert 0 < result["scores"][0] <= 1
