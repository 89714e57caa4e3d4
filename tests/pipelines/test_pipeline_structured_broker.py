"""The structured handlers configured in `handlers:`, end to end through the embedded broker."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_support import consumer_helpers, results_by_id, running_consumer, send
from PIL import Image
from structured_support import kafka_settings_for, master_key, png_data_url

from artifacts import LocalArtifactStore
from consumers.kinds import kinds_codec
from consumers.settings import HandlerSpec
from pipelines._refs import MediaRef
from pipelines._structured_schemas import CaptionRequested, VisibilityRequested
from pipelines.structured import STRUCTURED_KINDS, event_schemas
from services import RedisServer

CODEC = kinds_codec(STRUCTURED_KINDS)


@pytest.fixture
def consumers(redis_server: RedisServer) -> Iterator[Any]:
    """The consumer tests' helpers, their settings pointed at this session's Redis."""
    with consumer_helpers(redis_server.url) as support:
        yield support


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="PNG")
    return out.getvalue()


async def test_configured_handlers_publish_validated_results_and_failures(
    kafka_broker: Any, text_proxy: tuple[Any, Path], consumers: Any, tmp_path: Path
) -> None:
    """A caption of a stored image gets its caption; a missing artifact and a visibility
    request whose answers are cut fail, each naming why."""
    config = tmp_path / "config.yaml"
    config.write_text(f"gateway_settings:\n  artifacts: {{root: {tmp_path / 'store'}}}\n")
    stored = await LocalArtifactStore(tmp_path / "store").put(_png(), "image/png")
    handlers = [
        HandlerSpec(
            factory="pipelines.structured:Captioning",
            tasks=["captioning"],
            options={"config": str(config)},
        ),
        # Answers cut at 3 tokens are never JSON: the visibility request must fail, named.
        HandlerSpec(
            factory="pipelines.structured:VisibilityFilter",
            tasks=["visibility"],
            options={"max_tokens": 3},
        ),
    ]
    settings = kafka_settings_for(
        text_proxy[0], consumers.fast_settings(kafka_broker, handlers=handlers)
    )
    keep = VisibilityRequested(
        event_id=str(uuid.uuid4()),
        subject="product-1",
        task="visibility",
        image=png_data_url("white"),
        criteria=["white background"],
    )
    caption = CaptionRequested(
        event_id=str(uuid.uuid4()),
        subject="product-2",
        task="captioning",
        images=[MediaRef(artifact_id=stored.id)],
    )
    missing = CaptionRequested(
        event_id=str(uuid.uuid4()),
        subject="product-3",
        task="captioning",
        images=[png_data_url("red"), MediaRef(artifact_id="0" * 64)],
    )
    async with running_consumer(settings, master_key()):
        servers = kafka_broker.bootstrap_servers
        await send(servers, settings.topics.requests.name, CODEC, [keep, caption, missing])
        # Each validated against the published schema.
        results = await results_by_id(
            settings, 3, schemas=event_schemas(), decode=CODEC.decode_result
        )
    described, failed = results[caption.event_id], results[keep.event_id]
    assert type(described).__name__ == "CaptionSucceeded" and described.caption.title
    assert described.provider == "anthropic" and described.answers == 1
    assert described.images == 1 and described.cost_usd is not None
    assert (described.fallback, described.provider_attempts) == (False, 1)
    unfound = results[missing.event_id]
    assert type(unfound).__name__ == "CaptionFailed" and unfound.error.type == "InputNotFound"
    assert "image 1" in unfound.error.message and unfound.error.retriable is False
    assert type(failed).__name__ == "VisibilityFailed" and failed.attempts == 1
    assert failed.error.type == "InvalidAnswer" and "not valid JSON" in failed.error.message
