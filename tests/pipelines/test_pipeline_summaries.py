"""The video-summary handler: references resolved safely, frames sent as the provider needs."""

from __future__ import annotations

import base64
import io
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from PIL import Image
from pipeline_videos import config_with_primary, encode_video
from proxy_stub import serving

from artifacts import LocalArtifactStore
from consumers.errors import ProviderBadRequest
from consumers.handler_config import HandlerResources, build_registry
from consumers.handlers import HandlerContext
from consumers.settings import HandlerSpec, load_kafka_settings
from core.config import ConfigError
from core.redact import Redactor
from pipelines._errors import VideoNotFound, VideoRefused
from pipelines.summaries import (
    VIDEO_SUMMARY,
    SummaryRequested,
    VideoRef,
    VideoSummaries,
    VideoSummariesOptions,
    resolve_path,
)
from schemas import EventCodec


class _Proxy:
    """What an OpenAI-compatible proxy answers, recording each request it got."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "too many images"}})
        answer = {"model": "claude-sonnet-4-5", "choices": [{"message": {"content": "A clip."}}]}
        headers = {
            "x-gateway-provider": "anthropic",
            "x-gateway-cost-usd": "0.012",
            "x-gateway-latency-ms": "850",
            "x-gateway-upstream-ms": "800",
        }
        return httpx.Response(200, json=answer, headers=headers)


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    """An allowed root holding a 300-frame 10 s video and a 3-frame 2560x1440 clip."""
    root = tmp_path / "videos"
    root.mkdir()
    (root / "ten.mp4").write_bytes(encode_video(300, 64, 48))
    (root / "wide.mp4").write_bytes(encode_video(3, 2560, 1440))
    return root


def _handler(
    tmp_path: Path, root: Path, url: str, model: str, fallback: str | None = None
) -> VideoSummaries:
    config = tmp_path / f"{uuid.uuid4().hex}.yaml"
    config.write_text(config_with_primary(model, fallback=fallback))
    options = VideoSummariesOptions(config=str(config), allowed_roots=[str(root)], url=url)
    resources = HandlerResources(
        settings=load_kafka_settings(None), proxy_api_key="gw-key", redactor=Redactor()
    )
    return VideoSummaries(options, resources)


def _request(path: Path | str) -> SummaryRequested:
    return SummaryRequested(
        event_id=str(uuid.uuid4()),
        subject="video-1",
        video=VideoRef(path=str(path)),
        prompt="Summarise this video.",
    )


class _Progress:
    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []

    async def __call__(self, stage: str, progress: float, message: str) -> None:
        self.stages.append((stage, progress))


async def _run(handler: VideoSummaries, event: SummaryRequested, progress: Any = None) -> Any:
    ctx = HandlerContext(attempt=1, traceparent=None, report=progress or _Progress())
    await handler.start()
    try:
        return await handler.handle(event, ctx)
    finally:
        await handler.stop()


def _image_widths(body: dict[str, Any]) -> list[int]:
    parts = body["messages"][0]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert all(u.startswith("data:image/jpeg;base64,") for u in urls)
    return [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).width for u in urls]


async def test_a_summary_sends_the_providers_frames_to_the_task(
    tmp_path: Path, videos: Path
) -> None:
    """Claude serving the task: 20 JPEG frames at 1024 px go to the proxy's task, prompt first."""
    proxy, progress = _Proxy(), _Progress()
    async with serving(proxy) as url:
        handler = _handler(tmp_path, videos, url, "anthropic/claude-sonnet-4-5")
        summary = await _run(handler, _request(videos / "wide.mp4"), progress)
    body = proxy.bodies[0]
    assert body["model"] == "video-summarization"
    assert body["messages"][0]["content"][0] == {"type": "text", "text": "Summarise this video."}
    assert _image_widths(body) == [1024, 1024, 1024]  # 3 frames: fewer than the cap of 20
    assert summary.summary == "A clip." and summary.frames == 3
    assert (summary.provider, summary.cost_usd) == ("anthropic", 0.012)
    assert summary.proxy_latency_ms.total == 850.0
    assert [stage for stage, _ in progress.stages] == ["resolving", "decoding", "calling"]


async def test_switching_the_tasks_model_switches_the_frames_sent(
    tmp_path: Path, videos: Path
) -> None:
    """The same 10 s video goes as 20 frames to Claude and as 5 adaptive frames to GPT-4o."""
    claude, gpt = _Proxy(), _Proxy()
    async with serving(claude) as claude_url, serving(gpt) as gpt_url:
        await _run(
            _handler(tmp_path, videos, claude_url, "anthropic/claude-sonnet-4-5"),
            _request(videos / "ten.mp4"),
        )
        await _run(
            _handler(tmp_path, videos, gpt_url, "openai/gpt-4o"), _request(videos / "ten.mp4")
        )
    assert len(_image_widths(claude.bodies[0])) == 20
    assert len(_image_widths(gpt.bodies[0])) == 5


async def test_frames_are_sampled_for_the_whole_chain(tmp_path: Path, videos: Path) -> None:
    """Claude with GPT-4o behind it gets 10 frames, so GPT-4o can take the request too."""
    proxy = _Proxy()
    async with serving(proxy) as url:
        handler = _handler(tmp_path, videos, url, "anthropic/claude-sonnet-4-5", "openai/gpt-4o")
        summary = await _run(handler, _request(videos / "ten.mp4"))
    assert summary.frames == 10 and len(_image_widths(proxy.bodies[0])) == 10
    assert summary.sampling == "uniform"


async def test_a_proxy_refusal_maps_to_the_consumers_error_tree(
    tmp_path: Path, videos: Path
) -> None:
    """A 400 from the proxy is the consumers' non-retriable ProviderBadRequest."""
    async with serving(_Proxy(status=400)) as url:
        handler = _handler(tmp_path, videos, url, "anthropic/claude-sonnet-4-5")
        with pytest.raises(ProviderBadRequest, match="too many images"):
            await _run(handler, _request(videos / "ten.mp4"))


async def test_a_path_outside_the_allowed_roots_is_refused_before_decoding(
    tmp_path: Path, videos: Path
) -> None:
    """A video outside the allowed root never reaches the decoder or the proxy."""
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(encode_video(3, 64, 48))
    proxy = _Proxy()
    async with serving(proxy) as url:
        handler = _handler(tmp_path, videos, url, "anthropic/claude-sonnet-4-5")
        with pytest.raises(VideoRefused, match="outside the allowed roots"):
            await _run(handler, _request(outside))
    assert proxy.bodies == []


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path, videos: Path) -> None:
    """A link inside the root pointing outside it is refused once resolved."""
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    (videos / "link.mp4").symlink_to(outside)
    with pytest.raises(VideoRefused, match="leads outside"):
        resolve_path(str(videos / "link.mp4"), [videos.resolve()])


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("ten.mp4", VideoRefused),  # relative
        ("{root}/../elsewhere.mp4", VideoRefused),  # climbs out
        ("{root}/missing.mp4", VideoNotFound),
        ("{root}", VideoRefused),  # a directory
    ],
)
def test_paths_are_refused_or_missing_as_named(
    videos: Path, raw: str, error: type[Exception]
) -> None:
    """Relative paths, climbs out of the root and directories are refused; absent files missing."""
    with pytest.raises(error):
        resolve_path(raw.format(root=videos), [videos.resolve()])


def test_a_path_inside_the_root_resolves(videos: Path) -> None:
    """A file under the allowed root resolves to itself."""
    assert (
        resolve_path(str(videos / "ten.mp4"), [videos.resolve()]) == (videos / "ten.mp4").resolve()
    )


def test_a_reference_needs_exactly_one_source() -> None:
    """A request naming two sources (or none) does not decode."""
    codec = EventCodec(requests=[SummaryRequested])
    body = {"type": "video.summary.requested", "event_id": "e1", "subject": "s", "prompt": "p"}
    for video in ({}, {"path": "/a.mp4", "url": "https://example.test/a.mp4"}):
        with pytest.raises(msgspec.ValidationError, match="exactly one"):
            codec.decode_request(msgspec.json.encode({**body, "video": video}))
    decoded = codec.decode_request(msgspec.json.encode({**body, "video": {"artifact_id": "a1"}}))
    assert isinstance(decoded, SummaryRequested) and decoded.task == "video-summarization"


def test_the_handler_is_configured_by_name_with_typed_options(tmp_path: Path) -> None:
    """`pipelines.summaries:VideoSummaries` in the handlers config serves the summary kind."""
    config = tmp_path / "config.yaml"
    config.write_text(config_with_primary("gemini/gemini-2.5-flash"))
    spec = HandlerSpec(
        factory="pipelines.summaries:VideoSummaries",
        tasks=["video-summarization"],
        options={"config": str(config), "allowed_roots": [str(tmp_path)]},
    )
    settings = msgspec.structs.replace(load_kafka_settings(None), handlers=[spec])
    registry = build_registry(settings, proxy_api_key=None)
    assert VIDEO_SUMMARY in registry.kinds()
    assert isinstance(registry.resolve(_request(tmp_path / "a.mp4")), VideoSummaries)


def _artifact_handler(tmp_path: Path, url: str, extra: str = "", **options: Any) -> VideoSummaries:
    config = tmp_path / "config.yaml"
    config.write_text(config_with_primary("gemini/gemini-2.5-flash", fallback=None) + extra)
    resources = HandlerResources(
        settings=load_kafka_settings(None), proxy_api_key=None, redactor=Redactor()
    )
    return VideoSummaries(VideoSummariesOptions(config=str(config), url=url, **options), resources)


def _by(ref: VideoRef) -> SummaryRequested:
    return SummaryRequested(event_id=str(uuid.uuid4()), subject="s", video=ref, prompt="p")


async def test_a_stored_artifact_is_summarised_by_its_id(tmp_path: Path) -> None:
    """The deprecated artifacts_root still names the store an artifact id is read from."""
    store = LocalArtifactStore(tmp_path / "store")
    ref = await store.put(encode_video(300, 64, 48), "video/mp4")
    proxy = _Proxy()
    async with serving(proxy) as url:
        handler = _artifact_handler(tmp_path, url, artifacts_root=str(tmp_path / "store"))
        summary = await _run(handler, _by(VideoRef(artifact_id=ref.id)))
    assert summary.frames == 16 and len(_image_widths(proxy.bodies[0])) == 16


async def test_an_artifact_in_the_gateways_store_is_summarised(tmp_path: Path) -> None:
    """Without artifacts_root, an id is read from the store of gateway_settings.artifacts."""
    store = LocalArtifactStore(tmp_path / "shared")
    ref = await store.put(encode_video(30, 64, 48), "video/mp4")
    proxy = _Proxy()
    extra = f"gateway_settings:\n  artifacts: {{root: {tmp_path / 'shared'}}}\n"
    async with serving(proxy) as url:
        summary = await _run(
            _artifact_handler(tmp_path, url, extra), _by(VideoRef(artifact_id=ref.id))
        )
    assert summary.frames == 16 and len(_image_widths(proxy.bodies[0])) == 16


async def test_an_artifact_that_is_no_video_is_refused(tmp_path: Path) -> None:
    """A stored image named as the video is refused with VideoRefused naming its type."""
    store = LocalArtifactStore(tmp_path / "shared")
    ref = await store.put(b"\x89PNG fake", "image/png")
    extra = f"gateway_settings:\n  artifacts: {{root: {tmp_path / 'shared'}}}\n"
    async with serving(_Proxy()) as url:
        with pytest.raises(VideoRefused, match="image/png"):
            await _run(_artifact_handler(tmp_path, url, extra), _by(VideoRef(artifact_id=ref.id)))


async def test_a_missing_artifact_is_video_not_found(tmp_path: Path) -> None:
    """An id with no stored artifact fails as VideoNotFound, and nothing is sent."""
    proxy = _Proxy()
    async with serving(proxy) as url:
        handler = _artifact_handler(tmp_path, url, artifacts_root=str(tmp_path / "store"))
        with pytest.raises(VideoNotFound):
            await _run(handler, _by(VideoRef(artifact_id="0" * 64)))
    assert proxy.bodies == []


async def test_a_url_to_a_private_address_is_refused(tmp_path: Path) -> None:
    """A video URL on the loopback is refused by the guarded fetcher as VideoRefused."""
    async with serving(_Proxy()) as url:
        handler = _artifact_handler(tmp_path, url)
        with pytest.raises(VideoRefused, match="refused"):
            await _run(handler, _by(VideoRef(url="http://127.0.0.1:9/clip.mp4")))


def test_a_task_served_by_a_provider_without_policy_stops_start_up(tmp_path: Path) -> None:
    """The handler refuses a config whose summarization provider has no sampling policy."""
    config = tmp_path / "config.yaml"
    config.write_text(config_with_primary("mistral/pixtral-large"))
    spec = HandlerSpec(
        factory="pipelines.summaries:VideoSummaries",
        tasks=["video-summarization"],
        options={"config": str(config)},
    )
    settings = msgspec.structs.replace(load_kafka_settings(None), handlers=[spec])
    with pytest.raises(ConfigError, match="mistral"):
        build_registry(settings, proxy_api_key=None)
