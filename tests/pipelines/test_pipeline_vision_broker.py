"""Both vision kinds end to end on the embedded broker and on a real Apache Kafka broker:
request -> consumer -> the proxy and the Fal emulator (or the in-process model) -> a
schema-valid result with its accounting."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from broker_support import broker_settings, progress, results_by_id, running_consumer, send
from PIL import Image
from vision_support import emulated_boxes, encoded, master_key

from consumers.kinds import kinds_codec
from consumers.settings import HandlerSpec, KafkaSettings
from emulators.testing import FalHandle
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
from services import RedisServer
from tests.plugins.onnx_vision_data import GROUP_FACES, group_photo

CODEC = kinds_codec(VISION_KINDS)
STRICT = msgspec.json.Decoder(
    FacesSucceeded | FacesFailed | SegmentationSucceeded | SegmentationFailed, strict=True
)


@pytest.fixture
async def service(
    event_broker: Any,
    vision_proxy: tuple[Any, Path],
    redis_server: RedisServer,
    tmp_path: Path,
    fal: FalHandle,
) -> AsyncIterator[tuple[KafkaSettings, Path]]:
    """A consumer serving both kinds (faces also in-process, as task faces-local), on the
    embedded broker and then on real Kafka (`event_broker`)."""
    running_proxy, config = vision_proxy
    root = tmp_path / "images"
    root.mkdir()
    options = {"config": str(config), "allowed_roots": [str(root)], "fetch_allow": ["127.0.0.1"]}
    local = {**options, "local": {"model": "blazeface-full-range"}}
    handlers = [
        HandlerSpec(
            factory="pipelines.vision:FaceDetection", tasks=["face-detection"], options=options
        ),
        HandlerSpec(factory="pipelines.vision:Segmenter", tasks=["segmentation"], options=options),
        HandlerSpec(factory="pipelines.vision:FaceDetection", tasks=["faces-local"], options=local),
    ]
    settings = broker_settings(event_broker, running_proxy.url, redis_server.url, handlers)
    async with running_consumer(settings, master_key()):
        yield settings, root


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
    await send(servers, settings.topics.requests.name, CODEC, events)
    # Each checked against the published schema, then decoded strictly.
    results = await results_by_id(
        settings, len(events), schemas=event_schemas(), decode=STRICT.decode
    )
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

    reports = await progress(servers, settings.topics.status.name, 6)
    stages = {(p.request_id, p.stage) for p in reports}
    assert {(events[0].event_id, "resolving"), (events[0].event_id, "detecting")} <= stages
