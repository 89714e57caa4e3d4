"""The pure OpenAI video <-> Fal image-to-video transforms: validation naming the field,
seconds per model, Veo's aspect ratio from size, results and progress."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from plugins.fal.errors import FalInvalidRequest, FalJobFailed, FalProtocolError
from plugins.fal.transforms import QueueStatus
from plugins.fal.videos import (
    parse_video_request,
    served_seconds,
    video_input,
    video_of,
    video_progress,
)

KLING = "fal/fal-ai/kling-video/v2.5-turbo/pro/image-to-video"
VEO = "fal/fal-ai/veo3.1/image-to-video"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (1, 2, 3)).save(out, format="PNG")
    return out.getvalue()


def _parse(**fields: str) -> object:
    return parse_video_request({"prompt": "a coat", **fields}, _png())


@pytest.mark.parametrize(
    ("fields", "image", "url", "param"),
    [
        ({"prompt": ""}, _png(), None, "prompt"),
        ({"prompt": "x" * 2501}, _png(), None, "prompt"),
        ({"prompt": "a"}, None, None, "input_reference"),
        ({"prompt": "a"}, b"GIF? no", None, "input_reference"),
        ({"prompt": "a"}, None, "ftp://host/a.png", "input_reference"),
        ({"prompt": "a", "seconds": "7"}, _png(), None, "seconds"),
        ({"prompt": "a", "seconds": "four"}, _png(), None, "seconds"),
        ({"prompt": "a", "size": "1024x1024"}, _png(), None, "size"),
        ({"prompt": "a", "seed": "x"}, _png(), None, "seed"),
    ],
)
def test_bad_requests_name_their_field(
    fields: dict[str, str], image: bytes | None, url: str | None, param: str
) -> None:
    """Each invalid request raises FalInvalidRequest naming the field."""
    with pytest.raises(FalInvalidRequest) as caught:
        parse_video_request(fields, image, url)
    assert caught.value.param == param


def test_an_upload_becomes_a_data_uri_with_its_size() -> None:
    """The uploaded image is sent inline, and its size reported when no size is asked."""
    request = parse_video_request({"prompt": "a"}, _png())
    assert request.image_url.startswith("data:image/png;base64,")
    assert base64.b64decode(request.image_url.split(",", 1)[1]) == _png()
    assert (request.seconds, request.reported_size) == (4, "30x20")


@pytest.mark.parametrize(
    ("seconds", "kling", "veo"),
    [("4", 5, 4), ("5", 5, 6), ("6", 5, 6), ("8", 10, 8), ("10", 10, 8), ("12", 10, 8)],
)
def test_seconds_become_each_models_nearest_duration(seconds: str, kling: int, veo: int) -> None:
    """Kling renders 5 or 10 s, Veo 4, 6 or 8 s: the nearest, ties to the longer."""
    request = parse_video_request({"prompt": "a", "seconds": seconds}, _png())
    assert (served_seconds(request, KLING), served_seconds(request, VEO)) == (kling, veo)


def test_kling_input_has_a_duration_and_no_aspect_ratio() -> None:
    """Kling gets "5"/"10" and the image; it has no aspect ratio to set."""
    body = video_input(parse_video_request({"prompt": "a", "size": "1280x720"}, _png()), KLING)
    assert body["duration"] == "5" and "aspect_ratio" not in body
    assert body["image_url"].startswith("data:image/png")


@pytest.mark.parametrize(
    ("size", "aspect", "resolution"),
    [("1280x720", "16:9", "720p"), ("1024x1792", "9:16", "1080p"), (None, "auto", "720p")],
)
def test_veo_gets_aspect_ratio_and_resolution_from_size(
    size: str | None, aspect: str, resolution: str
) -> None:
    """Veo's aspect_ratio and resolution follow the OpenAI size (auto without one)."""
    fields = {"prompt": "a", "seconds": "8", **({"size": size} if size else {})}
    body = video_input(parse_video_request(fields, _png()), VEO)
    assert (body["duration"], body["aspect_ratio"], body["resolution"]) == (
        "8s",
        aspect,
        resolution,
    )


def test_a_model_without_a_transform_is_refused() -> None:
    """A configured model that is neither Kling nor Veo is a 400 naming the model."""
    with pytest.raises(FalInvalidRequest) as caught:
        served_seconds(parse_video_request({"prompt": "a"}, _png()), "fal/fal-ai/flux-lora")
    assert caught.value.param == "model"


def test_results_are_read_and_broken_ones_refused() -> None:
    """A result's video file is read; no video is a protocol error, an empty URL a failure."""
    video = video_of({"video": {"url": "https://x/v.mp4", "file_size": 10}})
    assert (video.url, video.content_type, video.file_size) == ("https://x/v.mp4", "video/mp4", 10)
    with pytest.raises(FalProtocolError):
        video_of({"images": []})
    with pytest.raises(FalJobFailed):
        video_of({"video": {"url": ""}})


def test_progress_follows_the_queue_and_the_logs_and_never_goes_back() -> None:
    """Queued is 0, running takes the logs' last percentage (or step), done is 100."""
    assert video_progress(QueueStatus(state="IN_QUEUE", position=2)) == ("queued", 0)
    running = QueueStatus(state="IN_PROGRESS", logs=("started", "Inference progress 50%"))
    assert video_progress(running) == ("in_progress", 50)
    assert video_progress(QueueStatus(state="IN_PROGRESS", logs=("step 3/4",))) == (
        "in_progress",
        75,
    )
    assert video_progress(QueueStatus(state="IN_PROGRESS"), 60) == ("in_progress", 60)
    assert video_progress(QueueStatus(state="COMPLETED")) == ("completed", 100)
    failed = QueueStatus(state="COMPLETED", error="boom")
    assert video_progress(failed, 40) == ("failed", 40)
