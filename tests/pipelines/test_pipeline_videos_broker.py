"""Video generation end to end: real Kafka -> consumer -> proxy -> Fal emulator -> a stored
MP4, with progress on the status topic, and a deadline that cancels the video."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from jobs_support import consumer_settings, start_fal_proxy, validate
from PIL import Image
from structured_support import master_key, sibling

from artifacts.settings import load_artifact_settings, open_store
from consumers import ConsumerService
from consumers.handler_config import build_registry
from consumers.settings import HandlerSpec, KafkaSettings
from emulators.testing import EmulatorHandle, FalHandle
from pipelines._refs import MediaRef
from pipelines.videos import (
    VIDEO_GENERATION,
    VideoGenerationFailed,
    VideoGenerationRequested,
    VideoGenerationSucceeded,
    event_schemas,
    probe_video,
)
from schemas import EventCodec, JobProgress, build_headers, event_type_of
from services import RedisServer

pytestmark = pytest.mark.real_broker

CODEC = EventCodec(
    requests=[VIDEO_GENERATION.request],
    results=[VIDEO_GENERATION.succeeded, VIDEO_GENERATION.failed],
)


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
    fal_emulator: FalHandle,
) -> Iterator[tuple[Any, Path]]:
    """The proxy in this process over the Fal emulator, and its config's path."""
    where = tmp_path_factory.mktemp("videos")
    running = start_fal_proxy(
        where, anthropic_emulator, openai_emulator, gemini_emulator, fal_emulator
    )
    yield running, where / "litellm_config.yaml"
    running.stop()


@pytest.fixture
def fal(fal_emulator: FalHandle) -> Iterator[FalHandle]:
    """The Fal emulator with a short queue wait and a clip made in about a second."""
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0.4, run_s=1.2)
    yield fal_emulator
    fal_emulator.reset()


@pytest.fixture
async def service(
    real_kafka: Any, proxy: tuple[Any, Path], redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[KafkaSettings, Any, Path]]:
    """A consumer serving video-generation through the proxy; its settings, the consumer
    test helpers and the folder stills may be read from."""
    support = sibling("consumers", "consumer_support")
    before = list(support.REDIS_URL)
    support.REDIS_URL[:] = [redis_server.url]
    running_proxy, config = proxy
    spec = HandlerSpec(
        factory="pipelines.videos:VideoGeneration",
        tasks=["video-generation"],
        options={"config": str(config), "allowed_roots": [str(tmp_path)], "poll_interval_s": 0.05},
    )
    settings = consumer_settings(running_proxy, real_kafka, support, [spec])
    running = ConsumerService(settings, build_registry(settings, proxy_api_key=master_key()))
    await running.start()
    try:
        yield settings, support, tmp_path
    finally:
        await running.stop()
        support.REDIS_URL[:] = before


async def _outcome(
    service: tuple[KafkaSettings, Any, Path], event: VideoGenerationRequested
) -> tuple[bytes, list[JobProgress]]:
    """The raw result of `event` and the progress published for it before the result."""
    settings, support, _ = service
    servers = settings.bootstrap_servers or ""
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        headers = build_headers(
            event_id=event.event_id, event_type=event_type_of(event), source="urn:test"
        )
        await producer.send_and_wait(
            settings.topics.requests.name,
            CODEC.encode(event),
            key=event.subject.encode(),
            headers=headers,
        )
    finally:
        await producer.stop()
    async with support.TopicReader(servers, settings.topics.results.name) as reader:
        await reader.until(lambda rd: len(rd.records) >= 1, timeout_s=60)
        raw = reader.records[0].value
    async with support.TopicReader(servers, settings.topics.status.name) as reader:
        # Published before the result: read until two polls in a row bring nothing new.
        await reader.until(lambda rd: len(rd.records) >= 1)
        seen = -1
        while seen != len(reader.records):
            seen = len(reader.records)
            await reader.poll()
            await reader.poll()
        progress = [msgspec.json.decode(r.value, type=JobProgress) for r in reader.records]
    return raw, sorted(progress, key=lambda p: p.occurred_at)


def _still(folder: Path) -> MediaRef:
    """Left half red, right half blue, 96x64."""
    picture = Image.new("RGB", (96, 64), (220, 20, 20))
    picture.paste((20, 20, 220), (48, 0, 96, 64))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    path = folder / "still.png"
    path.write_bytes(out.getvalue())
    return MediaRef(path=str(path))


def _request(folder: Path, **fields: Any) -> VideoGenerationRequested:
    return VideoGenerationRequested(
        event_id=str(uuid.uuid4()),
        subject=f"look-{uuid.uuid4().hex[:6]}",
        image=_still(folder),
        prompt="the model turns slowly",
        seconds=5,
        **fields,
    )


async def test_a_still_becomes_a_stored_clip_after_progress(
    service: tuple[KafkaSettings, Any, Path], proxy: tuple[Any, Path], fal: FalHandle
) -> None:
    """Queue position and a rising percent come before a schema-valid result whose clip is
    stored, decodes as Kling's 5 s, and is priced; a refused first submission shows in the
    attempts."""
    fal.set_queue_fault("submit", "503", count=1)
    event = _request(service[2])
    raw, progress = await _outcome(service, event)
    validate(event_schemas(), "results", raw)
    result = msgspec.json.decode(raw, type=VideoGenerationSucceeded, strict=True)
    served = result.served
    assert served.provider == "fal" and "kling-video" in served.model
    assert served.fallback is False and served.provider_attempts == 2
    assert served.cost_usd == 0.35  # 5 s at $0.07
    assert (round(result.duration_s, 1), result.width, result.height) == (5.0, 64, 42)
    store = open_store(load_artifact_settings(proxy[1]))
    stored = await store.get(result.video.artifact_id)
    assert len(stored) == result.video.size and probe_video(stored)[1:] == (64, 42)
    assert all(p.occurred_at <= result.occurred_at for p in progress)
    assert any(p.queue_position is not None for p in progress if p.stage == "queued")
    fractions = [p.progress for p in progress]
    assert fractions == sorted(fractions)
    assert len({p.progress for p in progress if p.stage == "in_progress"}) >= 2


async def test_a_deadline_that_passes_cancels_the_video(
    service: tuple[KafkaSettings, Any, Path], fal: FalHandle
) -> None:
    """A deadline before the clip is made fails the request with JobTimedOut and cancels the
    provider's job."""
    fal.set_timings(queue_s=0.05, run_s=60)
    event = _request(service[2], deadline=datetime.now(UTC) + timedelta(seconds=4))
    raw, _ = await _outcome(service, event)
    validate(event_schemas(), "results", raw)
    result = msgspec.json.decode(raw, type=VideoGenerationFailed, strict=True)
    assert result.error.type == "JobTimedOut" and result.error.retriable is False
    assert fal.queue_stats()["cancels"] == 1
