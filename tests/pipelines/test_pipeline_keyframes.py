"""Keyframe sampling: frames chosen at detected shots by the self-hosted TransNetV2, in-process."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pipeline_videos import config_with_primary, encode_shots
from proxy_stub import Answer, serving
from structlog.testing import capture_logs

from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.settings import load_kafka_settings
from core.redact import Redactor
from pipelines._shots import ShotDetectors
from pipelines.frames import (
    SamplingPolicy,
    keyframe_indices,
    sample_frames,
    sample_frames_async,
)
from pipelines.summaries import SummaryRequested, VideoRef, VideoSummaries, VideoSummariesOptions

# Five hard cuts' worth of shots; their true (first, last) frames.
LENGTHS = [40, 30, 50, 25, 45]
SHOTS = [(sum(LENGTHS[:k]), sum(LENGTHS[: k + 1]) - 1) for k in range(len(LENGTHS))]


def _shot_of(index: int) -> int:
    return next(k for k, (a, b) in enumerate(SHOTS) if a <= index <= b)


@pytest.fixture(scope="module")
def cuts() -> bytes:
    """190 frames at 160x90 in five shots of distinct textures, cut without transitions."""
    return encode_shots(LENGTHS)


def _config(tmp_path: Path, models: Path, strategy: str = "keyframes") -> Path:
    path = tmp_path / f"{uuid.uuid4().hex}.yaml"
    path.write_text(
        config_with_primary("gemini/gemini-2.5-flash", fallback=None)
        + "gateway_settings:\n"
        + f"  onnx: {{models_dir: {models}, device: cpu}}\n"
        + "  summaries:\n    sampling:\n"
        + f"      gemini: {{max_frames: 4, width: 128, strategy: {strategy}}}\n"
    )
    return path


def test_more_shots_than_frames_are_thinned_evenly() -> None:
    """Ten shots for four frames: shots 0, 3, 6 and 9 (linspace over shots), each its middle."""
    shots = [(10 * k, 10 * k + 9) for k in range(10)]
    assert keyframe_indices(shots, 4) == [5, 35, 65, 95]


def test_fewer_shots_than_frames_are_filled_in_proportion_to_length() -> None:
    """Shots of 10 and 30 frames share 8 frames 2 and 6, spread inside each shot."""
    picked = keyframe_indices([(0, 9), (10, 39)], 8)
    assert picked == sorted(picked) and len(set(picked)) == 8
    assert sum(i <= 9 for i in picked) == 2 and sum(i >= 10 for i in picked) == 6


def test_a_video_shorter_than_the_count_gives_each_frame_once() -> None:
    """Three frames in two shots cannot give five frames: all three, once each."""
    assert keyframe_indices([(0, 0), (1, 2)], 5) == [0, 1, 2]


async def test_keyframes_of_a_real_video_lie_in_its_shots(
    onnx_models: Path, tmp_path: Path, cuts: bytes
) -> None:
    """TransNetV2 finds the five shots; four frames come from four distinct shots, twelve
    cover all five, and none is the first frame of a shot after a cut."""
    detectors = ShotDetectors(_config(tmp_path, onnx_models))
    sampled = {}
    try:
        for count in (4, 12):
            policy = SamplingPolicy(max_frames=count, width=128, strategy="keyframes")
            detect = await detectors.detect_for(policy)
            assert detect is not None
            sampled[count] = await sample_frames_async(cuts, policy, detect=detect)
    finally:
        await detectors.stop()
    for count, frames in sampled.items():
        assert frames.strategy == "keyframes" and frames.shots == SHOTS
        assert len(frames.images) == len(frames.indices) == count
        assert len({_shot_of(i) for i in frames.indices}) == min(count, len(SHOTS))
        assert not set(frames.indices) & {a for a, _ in SHOTS[1:]}


def _handler(config: Path, url: str) -> VideoSummaries:
    resources = HandlerResources(
        settings=load_kafka_settings(None), proxy_api_key=None, redactor=Redactor()
    )
    options = VideoSummariesOptions(config=str(config), allowed_roots=[str(config.parent)], url=url)
    return VideoSummaries(options, resources)


def _answer(bodies: list[Any]) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request)
        body = {"model": "gemini-2.5-flash", "choices": [{"message": {"content": "Five shots."}}]}
        return httpx.Response(200, json=body, headers={"x-gateway-provider": "gemini"})

    return answer


async def _summarise(config: Path, proxy: Answer, video: Path) -> Any:
    async def report(stage: str, progress: float, message: str) -> None:
        return None

    event = SummaryRequested(
        event_id=str(uuid.uuid4()), subject="s", video=VideoRef(path=str(video)), prompt="p"
    )
    async with serving(proxy) as url:
        handler = _handler(config, url)
        await handler.start()
        try:
            return await handler.handle(
                event, HandlerContext(attempt=1, traceparent=None, report=report)
            )
        finally:
            await handler.stop()


async def test_a_keyframes_policy_in_the_config_sends_one_frame_per_shot(
    onnx_models: Path, tmp_path: Path, cuts: bytes
) -> None:
    """`summaries.sampling.gemini.strategy: keyframes` sends 4 frames from 4 distinct shots."""
    video = tmp_path / "cuts.mp4"
    video.write_bytes(cuts)
    sent: list[Any] = []
    summary = await _summarise(_config(tmp_path, onnx_models), _answer(sent), video)
    assert (summary.sampling, summary.frames, summary.provider) == ("keyframes", 4, "gemini")
    parts = json.loads(sent[0].content)["messages"][0]["content"]
    assert sum(p["type"] == "image_url" for p in parts) == 4


async def test_a_missing_detector_falls_back_to_uniform_and_says_why(
    tmp_path: Path, cuts: bytes
) -> None:
    """With no TransNetV2 built, the frames are uniform and a warning names the missing model."""
    video = tmp_path / "cuts.mp4"
    video.write_bytes(cuts)
    empty = tmp_path / "no-models"
    empty.mkdir()
    with capture_logs() as logs:
        summary = await _summarise(_config(tmp_path, empty), _answer([]), video)
    assert (summary.sampling, summary.frames) == ("uniform", 4)
    [warning] = [e for e in logs if e["event"] == "keyframes_unavailable"]
    assert warning["detector"] == "transnetv2" and "gateway models build" in warning["reason"]


def test_a_frame_is_an_image_of_the_policys_width(cuts: bytes) -> None:
    """Keyframes are JPEGs at the policy's width like any other frames (160 -> 128 px)."""
    frames = sample_frames(cuts, SamplingPolicy(max_frames=2, width=128, strategy="keyframes"))
    assert frames.strategy == "uniform"  # no detector given: uniform
    assert {Image.open(io.BytesIO(i)).width for i in frames.images} == {128}
