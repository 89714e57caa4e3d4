"""A video summary end to end: broker -> consumer -> proxy -> Anthropic emulator -> result."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pipeline_videos import encode_video
from structured_support import kafka_settings_for, resources_for, start_proxy

from consumers import ConsumerService
from consumers.handler_config import build_registry
from consumers.settings import HandlerSpec, KafkaSettings, TopicSettings, TopicsSettings
from emulators.testing import EmulatorHandle
from pipelines.summaries import (
    SummaryFailed,
    SummaryRequested,
    SummarySucceeded,
    VideoRef,
    event_schemas,
)
from schemas import EventCodec, JobProgress, build_headers, event_type_of

CODEC = EventCodec(requests=[SummaryRequested], results=[SummarySucceeded, SummaryFailed])


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
) -> Iterator[Any]:
    """The gateway proxy in-process, the repository's config routing to the emulators, and
    that config's path (the handler reads the same routing)."""
    where = tmp_path_factory.mktemp("proxy")
    running = start_proxy(where, anthropic_emulator, openai_emulator, gemini_emulator)
    yield running, where / "litellm_config.yaml"
    running.stop()


def _settings(broker: Any, proxy: Any, redis_url: str, config: Path, root: Path) -> KafkaSettings:
    tag = uuid.uuid4().hex[:8]
    topics = TopicsSettings(
        requests=TopicSettings(name=f"req-{tag}", partitions=1),
        results=TopicSettings(name=f"res-{tag}", partitions=1),
        status=TopicSettings(name=f"st-{tag}", partitions=1),
        dead_letters=TopicSettings(name=f"dlq-{tag}", partitions=1),
    )
    for topic in topics.all():
        broker.create_topic(topic.name, topic.partitions)
    spec = HandlerSpec(
        factory="pipelines.summaries:VideoSummaries",
        tasks=["video-summarization"],
        options={"config": str(config), "allowed_roots": [str(root)]},
    )
    base = kafka_settings_for(proxy)
    return msgspec.structs.replace(
        base,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"g-{tag}",
        topics=topics,
        dedupe_redis_url=redis_url,
        dedupe_namespace=f"test-dedupe-{tag}",
        commit_interval_s=0.2,
        drain_timeout_s=5.0,
        handlers=[spec],
    )


@pytest.fixture
async def service(
    kafka_broker: Any, proxy: tuple[Any, Path], redis_server: Any, tmp_path: Path
) -> AsyncIterator[tuple[KafkaSettings, Path]]:
    """A consumer serving video summaries through the proxy, and its allowed video root."""
    running_proxy, config = proxy
    root = tmp_path / "videos"
    root.mkdir()
    settings = _settings(kafka_broker, running_proxy, redis_server.url, config, root)
    key = resources_for(running_proxy).proxy_api_key
    registry = build_registry(settings, proxy_api_key=key)
    running = ConsumerService(settings, registry)
    await running.start()
    try:
        yield settings, root
    finally:
        await running.stop()


async def _read(servers: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        while len(records) < count:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def _send(servers: str, topic: str, event: SummaryRequested) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        headers = build_headers(
            event_id=event.event_id, event_type=event_type_of(event), source="urn:test"
        )
        await producer.send_and_wait(
            topic, CODEC.encode(event), key=event.subject.encode(), headers=headers
        )
    finally:
        await producer.stop()


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
    servers = settings.bootstrap_servers or ""
    await _send(servers, settings.topics.requests.name, event)
    [record] = await _read(servers, settings.topics.results.name, 1)
    result = CODEC.decode_result(record.value)
    assert isinstance(result, SummarySucceeded), result
    schemas = event_schemas()
    schema = {**schemas["properties"]["results"], "$defs": schemas["$defs"]}
    jsonschema_rs.validator_for(schema).validate(msgspec.json.decode(record.value))
    assert result.request_id == event.event_id and result.summary
    assert result.provider == "anthropic" and result.frames == 10
    assert (result.fallback, result.provider_attempts, result.sampling) == (False, 1, "uniform")
    assert result.cost_usd is not None and result.cost_usd > 0
    assert result.proxy_latency_ms is not None and result.proxy_latency_ms.total > 0
    assert anthropic_emulator.stats()["requests"] == before + 1
    progress = [
        msgspec.json.decode(r.value, type=JobProgress)
        for r in await _read(servers, settings.topics.status.name, 3)
    ]
    assert [p.stage for p in progress][:3] == ["resolving", "decoding", "calling"]
    assert {p.request_id for p in progress} == {event.event_id}


async def test_an_undecodable_video_yields_a_failure_naming_it(
    service: tuple[KafkaSettings, Path],
) -> None:
    """A file that is no video gets video.summary.failed with VideoUndecodable, at once."""
    settings, root = service
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00 not a video " * 100)
    event = _summary_of(broken)
    servers = settings.bootstrap_servers or ""
    await _send(servers, settings.topics.requests.name, event)
    [record] = await _read(servers, settings.topics.results.name, 1)
    result = CODEC.decode_result(record.value)
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
    servers = settings.bootstrap_servers or ""
    anthropic_emulator.set_fault("503")
    try:
        await _send(servers, settings.topics.requests.name, event)
        [record] = await _read(servers, settings.topics.results.name, 1)
    finally:
        anthropic_emulator.clear_faults()
    result = CODEC.decode_result(record.value)
    assert isinstance(result, SummarySucceeded), result
    assert result.provider == "openai" and result.fallback is True
    assert result.provider_attempts == 4  # three on Claude, one on GPT-4o
    assert result.frames == 10 and result.attempts == 1
    assert result.cost_usd is not None and result.cost_usd > 0
    assert openai_emulator.stats()["requests"] == before + 1
