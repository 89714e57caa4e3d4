"""LoRA training end to end: real Kafka -> consumer -> proxy -> Fal emulator -> result, with
progress on the status topic, the LoRA then used for an image, a failed job and a deadline."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from jobs_support import consumer_settings, png, proxy_client, start_fal_proxy, validate
from structured_support import master_key, sibling

from consumers import ConsumerService
from consumers.handler_config import build_registry
from consumers.settings import HandlerSpec, KafkaSettings
from emulators.testing import EmulatorHandle, FalHandle
from pipelines._refs import MediaRef
from pipelines.training import (
    LORA_TRAINING,
    TrainingFailed,
    TrainingRequested,
    TrainingSucceeded,
    event_schemas,
)
from schemas import EventCodec, JobProgress, build_headers, event_type_of
from services import RedisServer

pytestmark = pytest.mark.real_broker

CODEC = EventCodec(
    requests=[LORA_TRAINING.request], results=[LORA_TRAINING.succeeded, LORA_TRAINING.failed]
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
    where = tmp_path_factory.mktemp("training")
    running = start_fal_proxy(
        where, anthropic_emulator, openai_emulator, gemini_emulator, fal_emulator
    )
    yield running, where / "litellm_config.yaml"
    running.stop()


@pytest.fixture
def fal(fal_emulator: FalHandle) -> Iterator[FalHandle]:
    """The Fal emulator with a short queue wait and a training run of about a second."""
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0.4, run_s=0.05, training_s=1.2)
    yield fal_emulator
    fal_emulator.reset()


@pytest.fixture
async def service(
    real_kafka: Any, proxy: tuple[Any, Path], redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[KafkaSettings, Any, Path]]:
    """A consumer serving lora-training through the proxy; its settings, the consumer test
    helpers and the folder training images may be read from."""
    support = sibling("consumers", "consumer_support")
    before = list(support.REDIS_URL)
    support.REDIS_URL[:] = [redis_server.url]
    running_proxy, config = proxy
    spec = HandlerSpec(
        factory="pipelines.training:LoraTraining",
        tasks=["lora-training"],
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


async def _send(servers: str, topic: str, event: TrainingRequested) -> None:
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


async def _outcome(
    service: tuple[KafkaSettings, Any, Path], event: TrainingRequested
) -> tuple[bytes, list[JobProgress]]:
    """The raw result of `event` and the progress published for it before the result."""
    settings, support, _ = service
    servers = settings.bootstrap_servers or ""
    await _send(servers, settings.topics.requests.name, event)
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


def _images(folder: Path, count: int = 3) -> list[MediaRef]:
    refs = []
    for index in range(count):
        path = folder / f"look_{index}.png"
        path.write_bytes(png((40 * index, 90, 160)))
        refs.append(MediaRef(path=str(path)))
    return refs


def _training(folder: Path, **fields: Any) -> TrainingRequested:
    return TrainingRequested(
        event_id=str(uuid.uuid4()),
        subject=f"look-{uuid.uuid4().hex[:6]}",
        images=_images(folder),
        trigger_word="sks",
        steps=500,
        **fields,
    )


async def test_a_training_publishes_progress_then_a_lora_that_generates(
    service: tuple[KafkaSettings, Any, Path], proxy: tuple[Any, Path], fal: FalHandle
) -> None:
    """Queue position, Fal's step logs and a rising percent come before a schema-valid result
    whose LoRA changes an image generated through the proxy; a refused first submission
    shows in the attempts."""
    fal.set_queue_fault("submit", "503", count=1)
    event = _training(service[2])
    raw, progress = await _outcome(service, event)
    validate(event_schemas(), "results", raw)
    result = msgspec.json.decode(raw, type=TrainingSucceeded, strict=True)
    assert result.request_id == event.event_id and result.steps == 500 and result.images == 3
    served = result.served
    assert served.provider == "fal" and served.model.endswith("flux-lora-fast-training")
    assert served.fallback is False and served.provider_attempts == 2
    assert served.cost_usd == 1.0  # 500 steps at $2 per 1000
    assert result.latency_ms > 0
    assert progress and all(p.request_id == event.event_id for p in progress)
    assert all(p.occurred_at <= result.occurred_at for p in progress)
    assert any(p.queue_position is not None for p in progress)
    logs = [line for p in progress for line in p.logs]
    assert any("Training step" in line for line in logs)
    fractions = [p.progress for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] > fractions[0]
    assert len({p.progress for p in progress if p.stage == "running"}) >= 2
    running_proxy, _ = proxy
    with proxy_client(running_proxy) as client:

        def image(extra: dict[str, Any]) -> bytes:
            body = {"model": "image-generation", "prompt": "sks jacket", "seed": 1}
            answer = client.post(
                "/v1/images/generations", json={**body, "response_format": "b64_json", **extra}
            )
            assert answer.status_code == 200, answer.text
            return base64.b64decode(answer.json()["data"][0]["b64_json"])

        trained = image({"loras": [{"path": result.lora, "scale": 1.0}]})
        assert trained != image({})


async def test_a_job_the_provider_fails_gives_a_failure_naming_its_reason(
    service: tuple[KafkaSettings, Any, Path], fal: FalHandle
) -> None:
    """When Fal no longer knows the job, the result is lora.training.failed with its reason."""
    fal.set_queue_fault("status", "404", count=1)
    event = _training(service[2])
    raw, _ = await _outcome(service, event)
    validate(event_schemas(), "results", raw)
    result = msgspec.json.decode(raw, type=TrainingFailed, strict=True)
    assert result.error.type == "JobFailed" and result.error.retriable is False
    # The proxy's job error carries Fal's own answer.
    assert "Fal 404: The requested model was not found" in result.error.message
    assert result.attempts == 1
    assert fal.queue_stats()["jobs"] == 1


async def test_a_deadline_that_passes_mid_training_cancels_the_job(
    service: tuple[KafkaSettings, Any, Path], proxy: tuple[Any, Path], fal: FalHandle
) -> None:
    """A deadline before training ends fails the request with JobTimedOut and cancels the
    job, at the proxy and in the emulator."""
    fal.set_timings(queue_s=0.05, training_s=60)
    deadline = datetime.now(UTC) + timedelta(seconds=4)
    event = _training(service[2], deadline=deadline)
    raw, progress = await _outcome(service, event)
    result = msgspec.json.decode(raw, type=TrainingFailed, strict=True)
    assert result.error.type == "JobTimedOut", result.error
    assert fal.queue_stats()["cancels"] == 1
    assert any(p.stage == "running" for p in progress)
    with proxy_client(proxy[0]) as client:
        jobs = client.get("/v1/fine_tuning/jobs", params={"limit": 50}).json()["data"]
    mine = [j for j in jobs if (j.get("metadata") or {}).get("event_id") == event.event_id]
    assert [j["status"] for j in mine] == ["cancelled"]
