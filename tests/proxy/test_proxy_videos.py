"""`/v1/videos` through a running proxy with the official openai SDK against the Fal emulator:
image-to-video create / retrieve / list / download_content / delete, progress, bad input."""

from __future__ import annotations

import io
import time

import av
import numpy as np
import openai
import pytest
from PIL import Image
from test_proxy_images import fal, image_proxy, sdk

from emulators.testing import FalHandle

__all__ = ["fal", "image_proxy", "sdk"]  # fixtures shared with the image tests

TASK = "video-generation"


def _still(size: tuple[int, int] = (96, 64)) -> bytes:
    """Left half red, right half blue: what the frames must be derived from."""
    picture = Image.new("RGB", size, (220, 20, 20))
    picture.paste((20, 20, 220), (size[0] // 2, 0, size[0], size[1]))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def _until_done(sdk: openai.OpenAI, video_id: str) -> openai.types.Video:
    for _ in range(400):  # a bounded wait for the emulated run, not a timing assertion
        video = sdk.videos.retrieve(video_id)
        if video.status in ("completed", "failed"):
            return video
        time.sleep(0.02)
    raise AssertionError(f"video {video_id} did not finish")


def _frames(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_still_becomes_a_decodable_clip_derived_from_it(
    sdk: openai.OpenAI, fal: FalHandle
) -> None:
    """create -> completed; the content is an H.264 MP4 of Kling's 5 s whose frames show the
    input (red left, blue right), and the cost is the configured price per second."""
    raw = sdk.videos.with_raw_response.create(
        model=TASK,
        prompt="the model turns slowly",
        input_reference=("look.png", _still(), "image/png"),
        seconds="4",
    )
    created = raw.parse()
    assert created.status == "queued" and created.progress == 0
    assert raw.headers["x-gateway-model"].endswith("kling-video/v2.5-turbo/pro/image-to-video")
    assert raw.headers["x-gateway-cost-usd"] == "0.350000"  # 5 s at $0.07
    done = _until_done(sdk, created.id)
    assert (done.status, done.progress, done.seconds) == ("completed", 100, "5")
    content = sdk.videos.download_content(created.id).content
    with av.open(io.BytesIO(content)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    frames = _frames(content)
    assert len(frames) == 5 * 4  # the emulator renders 4 frames a second
    first = frames[0]
    assert first.shape == (42, 64, 3)  # the input's 3:2 shape, long side 64
    lower = first[first.shape[0] // 2 :]
    left, right = lower[:, :20].mean(axis=(0, 1)), lower[:, -20:].mean(axis=(0, 1))
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0]


def test_the_same_inputs_give_the_same_clip_and_another_prompt_another(
    sdk: openai.OpenAI, fal: FalHandle
) -> None:
    """Content is deterministic from prompt and image."""

    def clip(prompt: str) -> bytes:
        video = sdk.videos.create_and_poll(
            model=TASK, prompt=prompt, input_reference=("a.png", _still(), "image/png")
        )
        return sdk.videos.download_content(video.id).content

    first, again, other = clip("a turn"), clip("a turn"), clip("a walk")
    assert first == again and first != other


def test_size_sets_veo_aspect_ratio_on_the_fallback(sdk: openai.OpenAI, fal: FalHandle) -> None:
    """Kling failing on submit, Veo serves with the size's 16:9 and its own 8 s."""
    fal.set_queue_fault("submit", "503", count=3)
    raw = sdk.videos.with_raw_response.create(
        model=TASK,
        prompt="a coat in the wind",
        input_reference=("a.png", _still((64, 96)), "image/png"),
        seconds="8",
        size="1280x720",
    )
    assert raw.headers["x-gateway-fallback"] == "true"
    done = _until_done(sdk, raw.parse().id)
    frames = _frames(sdk.videos.download_content(done.id).content)
    assert (done.seconds, done.size, len(frames)) == ("8", "1280x720", 8 * 4)
    assert frames[0].shape == (36, 64, 3)


def test_progress_is_reported_while_the_clip_renders(sdk: openai.OpenAI, fal: FalHandle) -> None:
    """While running, retrieve says in_progress with a percentage from Fal's logs."""
    fal.set_timings(queue_s=0.02, run_s=1.5)
    video = sdk.videos.create(
        model=TASK, prompt="slow", input_reference=("a.png", _still(), "image/png")
    )
    seen = set()
    for _ in range(400):  # a bounded wait, not a timing assertion
        current = sdk.videos.retrieve(video.id)
        seen.add((current.status, current.progress))
        if current.status == "completed":
            break
        time.sleep(0.02)
    assert any(status == "in_progress" and 0 < p < 100 for status, p in seen)
    assert ("completed", 100) in seen


def test_list_and_delete(sdk: openai.OpenAI, fal: FalHandle) -> None:
    """list pages newest first; delete of a running video cancels it on Fal, then 404."""
    fal.set_timings(queue_s=30)
    first = sdk.videos.create(model=TASK, prompt="a", input_reference=("a.png", _still()))
    second = sdk.videos.create(model=TASK, prompt="b", input_reference=("a.png", _still()))
    listed = [v.id for v in sdk.videos.list(limit=50).data]
    assert listed.index(second.id) < listed.index(first.id)
    assert sdk.videos.delete(first.id).deleted
    assert fal.queue_stats()["cancels"] == 1
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve(first.id)


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({}, "input_reference"),
        ({"input_reference": ("a.png", b"not an image", "image/png")}, "input_reference"),
        ({"input_reference": ("a.png", _still()), "seconds": "3"}, "seconds"),
        ({"input_reference": ("a.png", _still()), "size": "640x480"}, "size"),
        ({"input_reference": ("a.png", _still()), "prompt": " "}, "prompt"),
    ],
    ids=["no-image", "not-an-image", "seconds", "size", "prompt"],
)
def test_bad_input_is_a_400_naming_the_field_before_any_fal_call(
    sdk: openai.OpenAI, fal: FalHandle, arguments: dict[str, object], param: str
) -> None:
    """Each refusal names its field, and Fal sees no job."""
    call = {"model": TASK, "prompt": "a coat", **arguments}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.videos.create(**call)  # type: ignore[arg-type]
    assert caught.value.param == param
    assert fal.queue_stats()["jobs"] == 0


def test_an_unknown_video_is_a_404(sdk: openai.OpenAI, fal: FalHandle) -> None:
    """An id the gateway never issued is a 404, for retrieve and for content."""
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve("video_0123456789abcdef01234567")
    with pytest.raises(openai.NotFoundError):
        sdk.videos.download_content("video_0123456789abcdef01234567")
