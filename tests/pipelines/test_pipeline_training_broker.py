"""LoRA training end to end: real Kafka -> consumer -> proxy -> Fal emulator -> result, with
progress on the status topic, the LoRA then used for an image, a failed job and a deadline."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from broker_support import job_consumer, job_outcome
from job_runs import fresh_request
from jobs_support import png, proxy_client, validate

from consumers.kinds import kinds_codec
from consumers.settings import KafkaSettings
from emulators.testing import FalHandle
from pipelines._refs import MediaRef
from pipelines.training import (
    LORA_TRAINING,
    TrainingFailed,
    TrainingRequested,
    TrainingSucceeded,
    event_schemas,
)
from services import RedisServer

pytestmark = pytest.mark.real_broker

CODEC = kinds_codec([LORA_TRAINING])


@pytest.fixture
def fal(fal: FalHandle) -> FalHandle:
    """The Fal emulator with a short queue wait and a training run of about a second."""
    fal.set_timings(queue_s=0.4, run_s=0.05, training_s=1.2)
    return fal


@pytest.fixture
async def service(
    real_kafka: Any, fal_proxy: tuple[Any, Path], redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[KafkaSettings, Path]]:
    """A consumer serving lora-training through the proxy; its settings and the folder training
    images may be read from."""
    async with job_consumer(
        real_kafka,
        fal_proxy,
        redis_server.url,
        tmp_path,
        factory="pipelines.training:LoraTraining",
        task="lora-training",
    ) as settings:
        yield settings, tmp_path


def _images(folder: Path, count: int = 3) -> list[MediaRef]:
    refs = []
    for index in range(count):
        path = folder / f"look_{index}.png"
        path.write_bytes(png((40 * index, 90, 160)))
        refs.append(MediaRef(path=str(path)))
    return refs


def _training(folder: Path, **fields: Any) -> TrainingRequested:
    return fresh_request(
        TrainingRequested, images=_images(folder), trigger_word="sks", steps=500, **fields
    )


async def test_a_training_publishes_progress_then_a_lora_that_generates(
    service: tuple[KafkaSettings, Path], fal_proxy: tuple[Any, Path], fal: FalHandle
) -> None:
    """Queue position, Fal's step logs and a rising percent come before a schema-valid result
    whose LoRA changes an image generated through the proxy; a refused first submission
    shows in the attempts."""
    fal.set_queue_fault("submit", "503", count=1)
    event = _training(service[1])
    raw, progress = await job_outcome(service[0], CODEC, event)
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
    running_proxy, _ = fal_proxy
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
    service: tuple[KafkaSettings, Path], fal: FalHandle
) -> None:
    """When Fal no longer knows the job, the result is lora.training.failed with its reason."""
    fal.set_queue_fault("status", "404", count=1)
    event = _training(service[1])
    raw, _ = await job_outcome(service[0], CODEC, event)
    validate(event_schemas(), "results", raw)
    result = msgspec.json.decode(raw, type=TrainingFailed, strict=True)
    assert result.error.type == "JobFailed" and result.error.retriable is False
    # The proxy's job error carries Fal's own answer.
    assert "Fal 404: The requested model was not found" in result.error.message
    assert result.attempts == 1
    assert fal.queue_stats()["jobs"] == 1


async def test_a_deadline_that_passes_mid_training_cancels_the_job(
    service: tuple[KafkaSettings, Path], fal_proxy: tuple[Any, Path], fal: FalHandle
) -> None:
    """A deadline before training ends fails the request with JobTimedOut and cancels the
    job, at the proxy and in the emulator."""
    fal.set_timings(queue_s=0.05, training_s=60)
    deadline = datetime.now(UTC) + timedelta(seconds=4)
    event = _training(service[1], deadline=deadline)
    raw, progress = await job_outcome(service[0], CODEC, event)
    result = msgspec.json.decode(raw, type=TrainingFailed, strict=True)
    assert result.error.type == "JobTimedOut", result.error
    assert fal.queue_stats()["cancels"] == 1
    assert any(p.stage == "running" for p in progress)
    with proxy_client(fal_proxy[0]) as client:
        jobs = client.get("/v1/fine_tuning/jobs", params={"limit": 50}).json()["data"]
    mine = [j for j in jobs if (j.get("metadata") or {}).get("event_id") == event.event_id]
    assert [j["status"] for j in mine] == ["cancelled"]
