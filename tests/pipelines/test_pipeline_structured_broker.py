"""The structured handlers configured in `handlers:`, end to end through the embedded broker."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from PIL import Image
from structured_support import kafka_settings_for, master_key, png_data_url, sibling, start_proxy

from artifacts import LocalArtifactStore
from consumers import ConsumerService
from consumers.handler_config import build_registry
from consumers.settings import HandlerSpec
from pipelines._refs import MediaRef
from pipelines._structured_schemas import CaptionRequested, VisibilityRequested
from pipelines.structured import STRUCTURED_KINDS, event_schemas
from schemas import EventCodec, build_headers, event_type_of
from services import RedisServer

CODEC = EventCodec(
    requests=[k.request for k in STRUCTURED_KINDS],
    results=[t for k in STRUCTURED_KINDS for t in (k.succeeded, k.failed)],
)


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_emulator: Any,
    openai_emulator: Any,
    gemini_emulator: Any,
) -> Iterator[Any]:
    """The gateway proxy in this process, its providers the three emulators."""
    running = start_proxy(
        tmp_path_factory.mktemp("broker"), anthropic_emulator, openai_emulator, gemini_emulator
    )
    yield running
    running.stop()


@pytest.fixture
def consumers(redis_server: RedisServer) -> Iterator[Any]:
    """The consumer tests' helpers, their settings pointed at this session's Redis."""
    support = sibling("consumers", "consumer_support")
    # The consumers' own session fixture may have set it already: put back what was there.
    before = list(support.REDIS_URL)
    support.REDIS_URL[:] = [redis_server.url]
    yield support
    support.REDIS_URL[:] = before


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="PNG")
    return out.getvalue()


async def _produce(servers: str, topic: str, events: list[Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        for event in events:
            headers = build_headers(
                event_id=event.event_id, event_type=event_type_of(event), source="urn:test"
            )
            await producer.send_and_wait(
                topic, CODEC.encode(event), key=event.subject.encode(), headers=headers
            )
    finally:
        await producer.stop()


async def test_configured_handlers_publish_validated_results_and_failures(
    kafka_broker: Any, proxy: Any, consumers: Any, tmp_path: Path
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
    settings = kafka_settings_for(proxy, consumers.fast_settings(kafka_broker, handlers=handlers))
    service = ConsumerService(settings, build_registry(settings, proxy_api_key=master_key()))
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
    await service.start()
    try:
        servers = kafka_broker.bootstrap_servers
        await _produce(servers, settings.topics.requests.name, [keep, caption, missing])
        async with consumers.TopicReader(servers, settings.topics.results.name) as reader:
            await reader.until(lambda rd: len(rd.records) >= 3)
            raw = {CODEC.decode_result(x.value).request_id: x.value for x in reader.records}
    finally:
        await service.stop()
    results = {request_id: CODEC.decode_result(value) for request_id, value in raw.items()}
    schemas = event_schemas()
    validator = jsonschema_rs.validator_for(
        {**schemas["properties"]["results"], "$defs": schemas["$defs"]}
    )
    for value in raw.values():
        validator.validate(msgspec.json.decode(value))
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
