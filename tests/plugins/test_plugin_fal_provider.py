"""FalImages against the Fal emulator: the queue round trip, resuming a job, cancelling it."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Iterator

import pytest
from image_server import serving
from PIL import Image

from emulators.testing import FalHandle
from plugins.fal import FalImages, FalInvalidRequest, FalServerError, parse_image_request
from plugins.fal.vision import parse_vision_chat

MODEL = "fal/fal-ai/flux-lora"
KEY = "fal-plugin-test-key"


@pytest.fixture
def fal(fal_emulator: FalHandle) -> Iterator[FalHandle]:
    """The plain-HTTP Fal emulator with short jobs, reset after the test."""
    fal_emulator.set_timings(queue_s=0.02, run_s=0.05)
    yield fal_emulator
    fal_emulator.reset()


@pytest.fixture
async def provider() -> AsyncIterator[FalImages]:
    """A started FalImages provider."""
    images = FalImages()
    await images.start()
    yield images
    await images.stop()


async def test_generate_returns_b64_images_of_the_asked_size(
    fal: FalHandle, provider: FalImages
) -> None:
    """b64_json answers hold n decodable PNGs of the requested size."""
    request = parse_image_request(
        {"prompt": "a trench coat", "n": 2, "size": "256x320", "response_format": "b64_json"}
    )
    answer = await provider.generate(
        provider.new_job(), request, model=MODEL, api_base=fal.url, key=KEY
    )
    assert len(answer["data"]) == 2
    image = Image.open(io.BytesIO(base64.b64decode(answer["data"][0]["b64_json"])))
    assert image.size == (256, 320)


async def test_a_status_failure_then_a_retry_resumes_the_same_job(
    fal: FalHandle, provider: FalImages
) -> None:
    """After a 503 on the status stream, calling again with the same job submits nothing new."""
    request = parse_image_request({"prompt": "a pleated skirt"})
    job = provider.new_job()
    fal.set_queue_fault("status", "503", count=1)
    with pytest.raises(FalServerError):
        await provider.generate(job, request, model=MODEL, api_base=fal.url, key=KEY)
    answer = await provider.generate(job, request, model=MODEL, api_base=fal.url, key=KEY)
    assert answer["data"][0]["url"].startswith(fal.url)
    assert fal.queue_stats()["jobs"] == 1


async def test_cancel_stops_a_job_still_queued(fal: FalHandle, provider: FalImages) -> None:
    """Abandoning generate and calling cancel cancels the Fal request."""
    fal.set_timings(queue_s=30)
    request = parse_image_request({"prompt": "a raincoat"})
    job = provider.new_job()
    task = asyncio.ensure_future(
        provider.generate(job, request, model=MODEL, api_base=fal.url, key=KEY)
    )
    for _ in range(1000):  # until the submit has been answered
        if job.handle is not None:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await provider.cancel(job)
    assert fal.queue_stats()["cancels"] == 1


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 180, 160)).save(out, format="PNG")
    return out.getvalue()


def _faces_chat(url: str) -> list[dict[str, object]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "face"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


async def test_a_vision_image_url_inside_the_network_is_refused_before_fal_is_called(
    fal: FalHandle, provider: FalImages
) -> None:
    """The image URL is the client's: one on a loopback address is a 400 naming the refusal
    on `messages`, and no job reaches Fal."""
    with serving({"/photo.png": (_png((40, 30)), "image/png")}) as server:
        request = parse_vision_chat(_faces_chat(f"{server.url}/photo.png"), "detect")
        with pytest.raises(FalInvalidRequest, match=r"refused.*loopback") as refused:
            await provider.analyse(
                request, model="fal-ai/moondream3-preview/detect", api_base=fal.url, key=KEY
            )
    assert refused.value.param == "messages"
    assert fal.queue_stats()["jobs"] == 0
