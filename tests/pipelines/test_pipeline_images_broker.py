"""The image kinds end to end: a broker (the embedded one, then real Apache Kafka) ->
consumer -> the gateway's media routes -> the Fal and Vertex emulators -> images stored as
artifacts -> results on Kafka."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from broker_support import broker_settings, progress, results_by_id, running_consumer, send
from image_support import MASTER_KEY, image_config, media_gateway, png, provider_env
from PIL import Image

from artifacts import LocalArtifactStore
from consumers.kinds import kinds_codec
from consumers.settings import HandlerSpec, KafkaSettings
from emulators.testing import FalHandle, VertexHandle
from pipelines._image_schemas import (
    ImageEditRequested,
    ImageEditSucceeded,
    ImageGenerationRequested,
    ImageGenerationSucceeded,
    LoraRef,
    TryOnFailed,
    TryOnRequested,
    TryOnSucceeded,
)
from pipelines._refs import MediaRef
from pipelines.images import IMAGE_KINDS, event_schemas
from schemas import Request

CODEC = kinds_codec(IMAGE_KINDS)
PERSON, RED, BLUE = (205, 170, 150), (220, 20, 20), (20, 20, 220)
HANDLERS = {
    "pipelines.images:ImageGeneration": "image-generation",
    "pipelines.images:ImageEditing": "image-editing",
    "pipelines.images:VirtualTryOn": "virtual-try-on",
}


class Stack(msgspec.Struct, kw_only=True):
    settings: KafkaSettings
    photos: Path
    store: LocalArtifactStore

    @property
    def servers(self) -> str:
        return self.settings.bootstrap_servers or ""


@pytest.fixture
async def stack(
    event_broker: Any, redis_server: Any, tmp_path: Path, fal: FalHandle, vertex: VertexHandle
) -> AsyncIterator[Stack]:
    """A consumer serving the three image kinds through the media routes, and its photos."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "person.png").write_bytes(png(PERSON))
    (photos / "shirt.png").write_bytes(png(RED))
    (photos / "trousers.png").write_bytes(png(BLUE))
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 300)
    config = image_config(tmp_path)
    options = {"config": str(config), "allowed_roots": [str(photos)]}
    specs = [HandlerSpec(factory=f, tasks=[t], options=options) for f, t in HANDLERS.items()]
    async with media_gateway(config, provider_env(tmp_path, fal, vertex)) as url:
        settings = broker_settings(event_broker, url, redis_server.url, specs)
        async with running_consumer(settings, MASTER_KEY):
            yield Stack(
                settings=settings, photos=photos, store=LocalArtifactStore(tmp_path / "store")
            )


async def _send(stack: Stack, *events: Request) -> None:
    await send(stack.servers, stack.settings.topics.requests.name, CODEC, events)


async def _results(stack: Stack, count: int) -> dict[str, Any]:
    """The first `count` results by request id, each checked against the published schema
    (strictly decoded, and validated as JSON)."""
    # Artifact references only: the images themselves never travel in a record.
    return await results_by_id(
        stack.settings,
        count,
        schemas=event_schemas(),
        decode=CODEC.decode_result,
        max_bytes=4096,
    )


def _id() -> str:
    return str(uuid.uuid4())


def _try_on(stack: Stack, person: str) -> TryOnRequested:
    return TryOnRequested(
        event_id=_id(),
        subject=f"look-{uuid.uuid4().hex[:6]}",
        person=MediaRef(path=str(stack.photos / person)),
        garments=[
            MediaRef(path=str(stack.photos / "shirt.png")),
            MediaRef(path=str(stack.photos / "trousers.png")),
        ],
        instruction="dress the person in the shirt and the trousers",
    )


async def _size(stack: Stack, artifact_id: str) -> tuple[int, int]:
    image = Image.open(io.BytesIO(bytes(await stack.store.get(artifact_id))))
    image.load()
    return image.size


async def test_one_event_of_each_kind_yields_stored_images_and_accounting(
    stack: Stack,
) -> None:
    """A generation, an edit and a try-on each get a schema-valid result whose artifacts
    decode at the requested size, with provider, model, attempts, images and cost."""
    generation = ImageGenerationRequested(
        event_id=_id(),
        subject="look-gen",
        prompt="a camel coat on a rail",
        size="512x512",
        seed=11,
        n=2,
        loras=[LoraRef(path="https://loras.example/style.safetensors", scale=0.9)],
    )
    edit = ImageEditRequested(
        event_id=_id(),
        subject="look-edit",
        image=MediaRef(path=str(stack.photos / "shirt.png")),
        prompt="make the shirt striped",
    )
    try_on = _try_on(stack, "person.png")
    await _send(stack, generation, edit, try_on)
    results = await _results(stack, 3)

    made = results[generation.event_id]
    assert isinstance(made, ImageGenerationSucceeded), made
    assert (made.served.provider, made.served.model) == ("fal", "fal/fal-ai/flux-lora")
    assert made.served.fallback is False and made.served.provider_attempts == 1
    assert made.served.images == 2 and made.served.cost_usd == pytest.approx(0.07)
    assert made.seed == 11 and made.latency_ms > 0
    assert [await _size(stack, a.artifact_id) for a in made.images] == [(512, 512)] * 2

    edited = results[edit.event_id]
    assert isinstance(edited, ImageEditSucceeded), edited
    assert edited.served.provider == "fal" and edited.served.images == 1
    assert edited.served.cost_usd is not None and edited.served.cost_usd > 0
    assert await _size(stack, edited.images[0].artifact_id) == (64, 96)

    dressed = results[try_on.event_id]
    assert isinstance(dressed, TryOnSucceeded), dressed
    assert dressed.served.model == "vertex/gemini-3-pro-image-preview"
    assert dressed.served.cost_usd == pytest.approx(0.134)
    assert dressed.images[0].content_type == "image/png"
    reports = await progress(stack.servers, stack.settings.topics.status.name, 9)
    stages = [p.stage for p in reports if p.request_id == generation.event_id]
    assert stages == ["resolving", "calling", "storing"]


async def test_a_failing_primary_is_served_by_the_fallback_and_says_so(
    stack: Stack, fal: FalHandle
) -> None:
    """With Fal's queue refusing every submit, Vertex serves the generation: the result
    carries fallback true, the Vertex model, every attempt and Vertex's price."""
    fal.set_queue_fault("submit", "503", count=None)
    event = ImageGenerationRequested(
        event_id=_id(), subject="look-fallback", prompt="a linen shirt", size="1024x1024"
    )
    await _send(stack, event)
    result = (await _results(stack, 1))[event.event_id]
    assert isinstance(result, ImageGenerationSucceeded), result
    assert result.served.fallback is True and result.served.provider == "vertex"
    assert result.served.model == "vertex/gemini-3-pro-image-preview"
    assert result.served.provider_attempts > 1
    assert result.served.cost_usd == pytest.approx(0.134)
    assert await _size(stack, result.images[0].artifact_id) == (1024, 1024)


async def test_a_bad_image_fails_naming_it_and_the_next_event_succeeds(
    stack: Stack, vertex: VertexHandle
) -> None:
    """An undecodable person photo gets tryon.failed (ImageUndecodable, at once, no provider
    call), and the try-on sent after it is served."""
    bad, good = _try_on(stack, "broken.png"), _try_on(stack, "person.png")
    await _send(stack, bad, good)
    results = await _results(stack, 2)
    failed = results[bad.event_id]
    assert isinstance(failed, TryOnFailed), failed
    assert failed.error.type == "ImageUndecodable" and "person image" in failed.error.message
    assert failed.error.retriable is False and failed.attempts == 1
    assert isinstance(results[good.event_id], TryOnSucceeded)
    assert len(vertex.calls()) == 1
