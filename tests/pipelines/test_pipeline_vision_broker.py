"""Both vision kinds end to end on the embedded broker and on a real Apache Kafka broker:
request -> consumer -> the proxy and the Fal emulator (or the in-process model) -> a
schema-valid result with its accounting."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from PIL import Image
from structured_support import kafka_settings_for
from vision_support import emulated_boxes, encoded, master_key, start_vision_proxy

from consumers import ConsumerService
from consumers.handler_config import build_registry
from consumers.settings import HandlerSpec, KafkaSettings, TopicSettings, TopicsSettings
from emulators.testing import EmulatorHandle, FalHandle
from pipelines._refs import MediaRef
from pipelines._vision_schemas import (
    FacesFailed,
    FacesRequested,
    FacesSucceeded,
    SegmentationFailed,
    SegmentationRequested,
    SegmentationSucceeded,
)
from pipelines.vision import VISION_KINDS, event_schemas
from schemas import EventCodec, JobProgress, build_headers, event_type_of
from services import RedisServer
from tests.plugins.onnx_vision_data import GROUP_FACES, group_photo

CODEC = EventCodec(
    requests=[k.request for k in VISION_KINDS],
    results=[t for k in VISION_KINDS for t in (k.succeeded, k.failed)],
)
STRICT = msgspec.json.Decoder(
    FacesSucceeded | FacesFailed | SegmentationSucceeded | SegmentationFailed, strict=True
)


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
    fal_emulator: FalHandle,
    onnx_models: Path,
) -> Iterator[tuple[Any, Path]]:
    """The proxy in-process over the repository's config, Fal its emulator, and that config."""
    emulators = {
        "anthropic": anthropic_emulator,
        "openai": openai_emulator,
        "gemini": gemini_emulator,
    }
    folder = tmp_path_factory.mktemp("vision-broker")
    running, config = start_vision_proxy(folder, emulators, fal_emulator, onnx_models)
    yield running, config
    running.stop()


def _settings(broker: Any, proxy: Any, redis_url: str, config: Path, root: Path) -> KafkaSettings:
    tag = uuid.uuid4().hex[:8]
    topics = TopicsSettings(
        requests=TopicSettings(name=f"vreq-{tag}", partitions=1),
        results=TopicSettings(name=f"vres-{tag}", partitions=1),
        status=TopicSettings(name=f"vst-{tag}", partitions=1),
        dead_letters=TopicSettings(name=f"vdlq-{tag}", partitions=1),
    )
    for topic in topics.all():
        broker.create_topic(topic.name, topic.partitions)
    options = {"config": str(config), "allowed_roots": [str(root)], "fetch_allow": ["127.0.0.1"]}
    local = {**options, "local": {"model": "blazeface-full-range"}}
    handlers = [
        HandlerSpec(
            factory="pipelines.vision:FaceDetection", tasks=["face-detection"], options=options
        ),
        HandlerSpec(factory="pipelines.vision:Segmenter", tasks=["segmentation"], options=options),
        HandlerSpec(factory="pipelines.vision:FaceDetection", tasks=["faces-local"], options=local),
    ]
    return msgspec.structs.replace(
        kafka_settings_for(proxy),
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"vg-{tag}",
        topics=topics,
        dedupe_redis_url=redis_url,
        dedupe_namespace=f"test-vision-{tag}",
        commit_interval_s=0.2,
        drain_timeout_s=5.0,
        handlers=handlers,
    )


@pytest.fixture
async def service(
    event_broker: Any,
    proxy: tuple[Any, Path],
    redis_server: RedisServer,
    tmp_path: Path,
    fal_emulator: FalHandle,
) -> AsyncIterator[tuple[KafkaSettings, Path]]:
    """A consumer serving both kinds (faces also in-process, as task faces-local), on the
    embedded broker and then on real Kafka (`event_broker`)."""
    running_proxy, config = proxy
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0.01, run_s=0.02)
    root = tmp_path / "images"
    root.mkdir()
    settings = _settings(event_broker, running_proxy, redis_server.url, config, root)
    consumer = ConsumerService(settings, build_registry(settings, proxy_api_key=master_key()))
    await consumer.start()
    try:
        yield settings, root
    finally:
        await consumer.stop()


async def _send(servers: str, topic: str, events: list[Any]) -> None:
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


async def _read(servers: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def _validated(value: bytes) -> Any:
    """The result decoded strictly, after checking its JSON against the published schema."""
    schemas = event_schemas()
    schema = {**schemas["properties"]["results"], "$defs": schemas["$defs"]}
    jsonschema_rs.validator_for(schema).validate(msgspec.json.decode(value))
    return STRICT.decode(value)


@pytest.mark.timeout(300)
async def test_both_kinds_yield_schema_valid_results_with_accounting(
    service: tuple[KafkaSettings, Path],
) -> None:
    """Faces through Fal and in-process, a mask through Fal, and an undecodable image: four
    schema-valid results, with provider, model, fallback, attempts and cost."""
    settings, root = service
    photo = root / "photo.png"
    data = encoded(Image.effect_noise((120, 90), 64).convert("RGB"))
    photo.write_bytes(data)
    group = root / "group.jpg"
    group.write_bytes(encoded(group_photo().convert("RGB"), "JPEG"))
    broken = root / "broken.png"
    broken.write_bytes(b"\x00 not an image " * 50)

    def ref(path: Path) -> MediaRef:
        return MediaRef(path=str(path))

    events: list[Any] = [
        FacesRequested(event_id=str(uuid.uuid4()), subject="a", image=ref(photo)),
        SegmentationRequested(event_id=str(uuid.uuid4()), subject="b", image=ref(photo)),
        FacesRequested(
            event_id=str(uuid.uuid4()), subject="c", task="faces-local", image=ref(group)
        ),
        FacesRequested(event_id=str(uuid.uuid4()), subject="d", image=ref(broken)),
    ]
    servers = settings.bootstrap_servers or ""
    await _send(servers, settings.topics.requests.name, events)
    records = await _read(servers, settings.topics.results.name, len(events))
    results = {r.request_id: r for r in (_validated(rec.value) for rec in records)}
    fal_faces, mask, local, failed = (results[e.event_id] for e in events)

    assert isinstance(fal_faces, FacesSucceeded)
    assert [f.box for f in fal_faces.faces] == emulated_boxes(data)
    assert isinstance(mask, SegmentationSucceeded) and 0 < mask.foreground_fraction < 1
    assert mask.mask.content_type == "image/png" and mask.boxes
    for result, model in ((fal_faces, "moondream3"), (mask, "sam-3")):
        served = result.served
        assert served.provider == "fal" and model in served.model, served
        assert served.fallback is False and served.provider_attempts == 1
        assert served.proxy_latency_ms is not None and result.latency_ms > 0

    # SAM-3 is priced per request (one image); Moondream3's price is not configured.
    assert mask.served.cost_usd == pytest.approx(0.005)
    assert fal_faces.served.cost_usd is None

    assert isinstance(local, FacesSucceeded) and len(local.faces) == GROUP_FACES
    assert local.served.provider == "onnx" and local.served.model == "blazeface-full-range"
    assert local.served.cost_usd == 0.0 and local.served.fallback is False

    assert isinstance(failed, FacesFailed) and failed.error.type == "ImageUndecodable"
    assert failed.error.retriable is False and failed.attempts == 1

    progress = [
        msgspec.json.decode(r.value, type=JobProgress)
        for r in await _read(servers, settings.topics.status.name, 6)
    ]
    stages = {(p.request_id, p.stage) for p in progress}
    assert {(events[0].event_id, "resolving"), (events[0].event_id, "detecting")} <= stages
