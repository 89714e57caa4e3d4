"""The Fal emulator's image-to-video models over the queue: real H.264 MP4s from the input
image, Fal's 422 for bad inputs."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from emulators.testing import FalHandle

KLING = "fal-ai/kling-video/v2.5-turbo/pro/image-to-video"
VEO = "fal-ai/veo3.1/image-to-video"


@pytest.fixture
def fal(fal_emulator: FalHandle) -> FalHandle:
    """The emulator, reset, with short jobs."""
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0.01, run_s=0.05)
    return fal_emulator


def _image_url(colour: tuple[int, int, int] = (200, 30, 30)) -> str:
    out = io.BytesIO()
    Image.new("RGB", (40, 80), colour).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _run(fal: FalHandle, endpoint: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"authorization": "Key test"}
    submitted = httpx.post(f"{fal.url}/{endpoint}", json=body, headers=headers).json()
    for _ in range(200):  # a bounded wait for the emulated run
        status = httpx.get(submitted["status_url"], headers=headers).json()
        if status["status"] == "COMPLETED":
            break
        time.sleep(0.01)
    return httpx.get(submitted["response_url"], headers=headers)


def _frames(url: str) -> list[Any]:
    with av.open(io.BytesIO(httpx.get(url).content)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_kling_renders_the_duration_at_the_inputs_shape(fal: FalHandle) -> None:
    """Kling's "10" is 40 frames shaped like the 1:2 input, its colour in the frames."""
    result = _run(fal, KLING, {"prompt": "walk", "image_url": _image_url(), "duration": "10"})
    video = result.json()["video"]
    assert video["content_type"] == "video/mp4" and video["file_size"] > 0
    frames = _frames(video["url"])
    assert len(frames) == 40 and frames[0].shape == (64, 32, 3)
    assert frames[0][40:].mean(axis=(0, 1))[0] > 150


def test_veo_honours_the_aspect_ratio(fal: FalHandle) -> None:
    """Veo's 9:16 at 4s is 16 frames of 36x64."""
    body = {"prompt": "turn", "image_url": _image_url(), "duration": "4s", "aspect_ratio": "9:16"}
    frames = _frames(_run(fal, VEO, body).json()["video"]["url"])
    assert len(frames) == 16 and frames[0].shape == (64, 36, 3)


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        (KLING, {"prompt": "a", "duration": "5"}, "image_url"),
        (KLING, {"prompt": "a", "image_url": _image_url(), "duration": "4"}, "duration"),
        (VEO, {"prompt": "a", "image_url": _image_url(), "aspect_ratio": "1:1"}, "aspect_ratio"),
    ],
)
def test_bad_inputs_fail_with_fals_422(
    fal: FalHandle, endpoint: str, body: dict[str, Any], field: str
) -> None:
    """The result of an invalid input is Fal's 422 naming the field."""
    result = _run(fal, endpoint, body)
    assert result.status_code == 422
    assert result.json()["detail"][0]["loc"] == ["body", field]
