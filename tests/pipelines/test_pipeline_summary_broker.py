"""A video summary end to end: broker -> consumer -> proxy -> Anthropic emulator -> result."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from broker_support import broker_settings, checked, progress, read, running_consumer, send
from pipeline_videos import encode_video
from structured_support import master_key

from consumers.settings import HandlerSpec, KafkaSettings
from emulators.testing import EmulatorHandle
from pipelines.summaries import (
    SummaryFailed,
    SummaryRequested,
    SummarySucceeded,
    VideoRef,
    event_schemas,
)
from schemas import EventCodec

CODEC = EventCodec(requests=[SummaryRequested], results=[SummarySucceeded, SummaryFailed])


@pytest.fixture
async def service(
    kafka_broker: Any, text_proxy: tuple[Any, Path], redis_server: Any, tmp_path: Path
) -> AsyncIterator[tuple[KafkaSettings, Path]]:
    """A consumer serving video summaries through the proxy, and its allowed video root."""
    running_proxy, config = text_proxy
    root = tmp_path / "videos"
    root.mkdir()
    spec = HandlerSpec(
        factory="pipelines.summaries:VideoSummaries",
        tasks=["video-summarization"],
        options={"config": str(config), "allowed_roots": [str(root)]},
    )
    settings = broker_settings(kafka_broker, running_proxy.url, redis_server.url, [spec])
    async with running_consumer(settings, master_key()):
        yield settings, root


async def _outcome(settings: KafkaSettings, event: SummaryRequested) -> bytes:
    """`event` sent; its one result, raw."""
    servers = settings.bootstrap_servers or ""
    await send(servers, settings.topics.requests.name, CODEC, [event])
    [record] = await read(servers, settings.topics.results.name, 1)
    value: bytes = record.value
    return value


def _summary_of(path: Path) -> SummaryRequested:
    return SummaryRequested(
        event_id=str(uuid.uuid4()),
        subject=f"video-{uuid.uuid4().hex[:6]}",
        video=VideoRef(path=str(path)),
        prompt="Summarise this video in one sentence.",
    )


async def test_a_summary_event_yields_its_result_and_progress(
    service: tuple[KafkaSettings, Path], anthropic_emulator: EmulatorHandle
) -> None:
    """One summary request gets a schema-valid result from Claude with cost, and progress;
    10 frames, the most GPT-4o (the first fallback) takes."""
    settings, root = service
    video = root / "clip.mp4"
    video.write_bytes(encode_video(60, 320, 180))
    event = _summary_of(video)
    before = anthropic_emulator.stats()["requests"]
    result = checked(await _outcome(settings, event), event_schemas(), CODEC.decode_result)
    assert isinstance(result, SummarySucceeded), result
    assert result.request_id == event.event_id and result.summary
    assert result.provider == "anthropic" and result.frames == 10
    assert (result.fallback, result.provider_attempts, result.sampling) == (False, 1, "uniform")
    assert result.cost_usd is not None and result.cost_usd > 0
    assert result.proxy_latency_ms is not None and result.proxy_latency_ms.total > 0
    assert anthropic_emulator.stats()["requests"] == before + 1
    reports = await progress(settings.bootstrap_servers or "", settings.topics.status.name, 3)
    assert [p.stage for p in reports][:3] == ["resolving", "decoding", "calling"]
    assert {p.request_id for p in reports} == {event.event_id}


async def test_an_undecodable_video_yields_a_failure_naming_it(
    service: tuple[KafkaSettings, Path],
) -> None:
    """A file that is no video gets video.summary.failed with VideoUndecodable, at once."""
    settings, root = service
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00 not a video " * 100)
    result = CODEC.decode_result(await _outcome(settings, _summary_of(broken)))
    assert isinstance(result, SummaryFailed) and result.error.type == "VideoUndecodable"
    assert result.attempts == 1 and result.error.retriable is False


async def test_a_summary_is_served_by_the_fallback_when_claude_is_down(
    service: tuple[KafkaSettings, Path],
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
) -> None:
    """Claude answering 503s, GPT-4o serves the same frames (within its 10), and says so."""
    settings, root = service
    video = root / "clip.mp4"
    video.write_bytes(encode_video(90, 320, 180))
    event = _summary_of(video)
    before = openai_emulator.stats()["requests"]
    anthropic_emulator.set_fault("503")
    try:
        raw = await _outcome(settings, event)
    finally:
        anthropic_emulator.clear_faults()
    result = CODEC.decode_result(raw)
    assert isinstance(result, SummarySucceeded), result
    assert result.provider == "openai" and result.fallback is True
    assert result.provider_attempts == 4  # three on Claude, one on GPT-4o
    assert result.frames == 10 and result.attempts == 1
    assert result.cost_usd is not None and result.cost_usd > 0
    assert openai_emulator.stats()["requests"] == before + 1
