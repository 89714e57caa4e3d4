"""The video generation handler on its own: inputs refused before any call, what a stored
clip is read as, and its job loop against a scripted proxy (`proxy_stub.serving`)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from job_runs import handled
from jobs_support import Progress, local_config, png, resources
from pipeline_videos import encode_video
from proxy_stub import Answer, serving

from pipelines._errors import (
    ImageUndecodable,
    InputNotFound,
    InputRefused,
    JobFailed,
    VideoUndecodable,
)
from pipelines._refs import MediaRef
from pipelines.videos import (
    VideoGeneration,
    VideoGenerationOptions,
    VideoGenerationRequested,
    event_schemas,
    probe_video,
)


def _handler(tmp_path: Path, url: str = "http://proxy.test", **options: Any) -> VideoGeneration:
    opts = VideoGenerationOptions(
        config=str(local_config(tmp_path)),
        allowed_roots=[str(tmp_path)],
        poll_interval_s=0.01,
        **options,
    )
    return VideoGeneration(opts, resources(url))


def _event(image: MediaRef) -> VideoGenerationRequested:
    return VideoGenerationRequested(
        event_id=str(uuid.uuid4()), subject="look-1", image=image, prompt="turns", seconds=5
    )


def test_a_clip_is_read_for_its_duration_and_size() -> None:
    """An MP4 of 60 frames at 30 fps, 320x180, probes as 2 s of 320x180."""
    duration, width, height = probe_video(encode_video(60, 320, 180))
    assert (round(duration, 1), width, height) == (2.0, 320, 180)


def test_bytes_that_are_no_video_are_undecodable() -> None:
    """What is not an MP4 raises VideoUndecodable."""
    with pytest.raises(VideoUndecodable):
        probe_video(b"\x00\x00\x00 not a video" * 50)


def test_a_size_must_look_like_width_x_height() -> None:
    """`size` other than WIDTHxHEIGHT is refused at decoding."""
    body = {"type": "video.generation.requested", "event_id": "e", "subject": "s"}
    body |= {"image": {"path": "/a.png"}, "prompt": "p", "size": "big"}
    with pytest.raises(msgspec.ValidationError, match="size"):
        msgspec.json.decode(msgspec.json.encode(body), type=VideoGenerationRequested)


async def test_a_still_that_does_not_decode_is_refused(tmp_path: Path) -> None:
    """A .png that is no image fails with ImageUndecodable before any call."""
    (tmp_path / "still.png").write_bytes(b"garbage")
    with pytest.raises(ImageUndecodable):
        await handled(_handler(tmp_path), _event(MediaRef(path=str(tmp_path / "still.png"))))


async def test_a_still_outside_the_allowed_roots_is_refused(tmp_path: Path) -> None:
    """A path outside `allowed_roots` is refused without reading it."""
    with pytest.raises(InputRefused, match="outside"):
        await handled(_handler(tmp_path), _event(MediaRef(path="/etc/hostname")))


async def test_a_missing_artifact_is_not_found(tmp_path: Path) -> None:
    """An artifact id the store does not hold fails with InputNotFound."""
    with pytest.raises(InputNotFound):
        await handled(_handler(tmp_path), _event(MediaRef(artifact_id="0" * 64)))


def _scripted(statuses: list[Any], content: bytes) -> tuple[Answer, list[str]]:
    calls: list[str] = []
    left = list(statuses)

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        path = request.url.path
        if request.method == "POST" and path == "/v1/videos":
            headers = {
                "x-gateway-provider": "fal",
                "x-gateway-model": "fal/kling",
                "x-gateway-attempts": "2",
                "x-gateway-fallback": "false",
                "x-gateway-cost-usd": "0.350000",
            }
            return httpx.Response(200, json={"id": "video_1", "status": "queued"}, headers=headers)
        if path.endswith("/content"):
            return httpx.Response(200, content=content, headers={"content-type": "video/mp4"})
        status = left.pop(0) if len(left) > 1 else left[0]
        if isinstance(status, int):
            return httpx.Response(
                status, json={"error": {"message": "down"}}, headers={"x-gateway-retriable": "true"}
            )
        return httpx.Response(200, json={"id": "video_1", **status})

    return answer, calls


async def test_a_clip_is_stored_with_its_accounting(tmp_path: Path) -> None:
    """Queued, a failed look-up, in progress, completed: one video made, the clip stored."""
    (tmp_path / "still.png").write_bytes(png())
    statuses = [
        {"status": "queued", "progress": 0, "queue_position": 2},
        503,
        {"status": "in_progress", "progress": 40},
        {"status": "completed", "progress": 100},
    ]
    answer, calls = _scripted(statuses, encode_video(30, 64, 48, fps=10))
    progress = Progress()
    async with serving(answer) as url:
        handler = _handler(tmp_path, url)
        await handler.start()
        try:
            clip = await handler.handle(
                _event(MediaRef(path=str(tmp_path / "still.png"))), progress.ctx
            )
        finally:
            await handler.stop()
    assert (round(clip.duration_s, 1), clip.width, clip.height) == (3.0, 64, 48)
    assert clip.video.content_type == "video/mp4" and clip.video.size > 0
    assert clip.served.provider_attempts == 2 and clip.served.cost_usd == 0.35
    assert calls.count("POST /v1/videos") == 1
    assert [r["queue_position"] for r in progress.reports if r["stage"] == "queued"] == [2]
    fractions = [r["progress"] for r in progress.reports]
    assert fractions == sorted(fractions)


async def test_a_failed_video_raises_the_providers_reason(tmp_path: Path) -> None:
    """A video the proxy reports failed raises JobFailed with its message."""
    (tmp_path / "still.png").write_bytes(png())
    failed = {"status": "failed", "error": {"message": "fal: content policy"}}
    answer, _ = _scripted([failed], b"")
    async with serving(answer) as url:
        with pytest.raises(JobFailed, match="content policy"):
            await handled(
                _handler(tmp_path, url), _event(MediaRef(path=str(tmp_path / "still.png")))
            )


async def test_content_that_is_no_video_is_not_stored(tmp_path: Path) -> None:
    """A completed video whose content does not decode fails with VideoUndecodable."""
    (tmp_path / "still.png").write_bytes(png())
    answer, _ = _scripted([{"status": "completed", "progress": 100}], b"not an mp4" * 20)
    async with serving(answer) as url:
        with pytest.raises(VideoUndecodable):
            await handled(
                _handler(tmp_path, url), _event(MediaRef(path=str(tmp_path / "still.png")))
            )
    assert not [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]


def test_event_schemas_cover_the_request_and_both_results() -> None:
    """The published schema names the request and both result types by their tags."""
    text = msgspec.json.encode(event_schemas()).decode()
    for tag in (
        "video.generation.requested",
        "video.generation.succeeded",
        "video.generation.failed",
    ):
        assert f'"{tag}"' in text
