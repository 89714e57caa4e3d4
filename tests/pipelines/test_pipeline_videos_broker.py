"""Video generation end to end: real Kafka -> consumer -> proxy -> Fal emulator -> a stored
MP4, with progress on the status topic, and a deadline that cancels the video."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from broker_support import job_consumer, job_outcome
from job_runs import fresh_request
from jobs_support import validate
from PIL import Image

from artifacts.settings import load_artifact_settings, open_store
from consumers.kinds import kinds_codec
from consumers.settings import KafkaSettings
from emulators.testing import FalHandle
from pipelines._refs import MediaRef
from pipelines.videos import (
    VIDEO_GENERATION,
    VideoGenerationFailed,
    VideoGenerationRequested,
    VideoGenerationSucceeded,
    event_schemas,
    probe_video,
)
from services import RedisServer

pytestmark = pytest.mark.real_broker

CODEC = kinds_codec([VIDEO_GENERATION])


@pytest.fixture
def fal(fal: FalHandle) -> FalHandle:
    """The Fal emulator with a short queue wait and a clip made in 3 s.

    Why 3 s: the emulator logs its progress at each quarter of the run, and the rising percent
    is seen only when two polls land in different quarters; a poll through the proxy can take
    a large part of a second on a loaded machine, and 0.3 s quarters (a 1.2 s run) were once
    all seen by a single poll."""
    fal.set_timings(queue_s=0.4, run_s=3.0)
    return fal


@pytest.fixture
async def service(
    real_kafka: Any, fal_proxy: tuple[Any, Path], redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[KafkaSettings, Path]]:
    """A consumer serving video-generation through the proxy; its settings and the folder stills
    may be read from."""
    async with job_consumer(
        real_kafka,
        fal_proxy,
        redis_server.url,
        tmp_path,
        factory="pipelines.videos:VideoGeneration",
        task="video-generation",
    ) as settings:
        yield settings, tmp_path


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
    return fresh_request(
        VideoGenerationRequested,
        image=_still(folder),
        prompt="the model turns slowly",
        seconds=5,
        **fields,
    )


async def test_a_still_becomes_a_stored_clip_after_progress(
    service: tuple[KafkaSettings, Path], fal_proxy: tuple[Any, Path], fal: FalHandle
) -> None:
    """Queue position and a rising percent come before a schema-valid result whose clip is
    stored, decodes as Kling's 5 s, and is priced; a refused first submission shows in the
    attempts."""
    fal.set_queue_fault("submit", "503", count=1)
    event = _request(service[1])
    raw, progress = await job_outcome(service[0], CODEC, event)
    validate(event_schemas(), "results", raw)
    result = msgspec.json.decode(raw, type=VideoGenerationSucceeded, strict=True)
    served = result.served
    assert served.provider == "fal" and "kling-video" in served.model
    assert served.fallback is False and served.provider_attempts == 2
    assert served.cost_usd == 0.35  # 5 s at $0.07
    assert (round(result.duration_s, 1), result.width, result.height) == (5.0, 64, 42)
    store = open_store(load_artifact_settings(fal_proxy[1]))
    stored = await store.get(result.video.artifact_id)
    assert len(stored) == result.video.size and probe_video(stored)[1:] == (64, 42)
    assert all(p.occurred_at <= result.occurred_at for p in progress)
    assert any(p.queue_position is not None for p in progress if p.stage == "queued")
    fractions = [p.progress for p in progress]
    assert fractions == sorted(fractions)
    assert len({p.progress for p in progress if p.stage == "in_progress"}) >= 2


async def test_a_deadline_that_passes_cancels_the_video(
    service: tuple[KafkaSettings, Path], fal: FalHandle
) -> None:
    """A deadline before the clip is made fails the request with JobTimedOut and cancels the
    provider's job."""
    fal.set_timings(queue_s=0.05, run_s=60)
    event = _request(service[1], deadline=datetime.now(UTC) + timedelta(seconds=4))
    raw, _ = await job_outcome(service[0], CODEC, event)
    validate(event_schemas(), "results", raw)
    result = msgspec.json.decode(raw, type=VideoGenerationFailed, strict=True)
    assert result.error.type == "JobTimedOut" and result.error.retriable is False
    assert fal.queue_stats()["cancels"] == 1
