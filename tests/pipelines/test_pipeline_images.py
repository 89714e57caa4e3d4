"""The image handlers against the gateway's media routes and the Fal and Vertex emulators:
how each request kind maps onto the proxy's routes, and how bad inputs fail before any call."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from image_support import Progress, image_config, media_gateway, png, provider_env, resources_for
from PIL import Image
from structured_support import sibling

from artifacts import LocalArtifactStore
from consumers.errors import ProviderBadRequest
from emulators.testing import FalHandle, VertexHandle
from pipelines._errors import (
    ImageTooLarge,
    ImageUndecodable,
    InputNotFound,
    InputRefused,
    LoraNotFound,
)
from pipelines._image_schemas import (
    ImageEditRequested,
    ImageGenerationRequested,
    LoraRef,
    TryOnRequested,
)
from pipelines._refs import MediaRef
from pipelines.images import (
    ImageEditing,
    ImageGeneration,
    ImageOptions,
    VirtualTryOn,
    decode_image,
    event_schemas,
)
from schemas import Request

PERSON, RED, BLUE = (205, 170, 150), (220, 20, 20), (20, 20, 220)
LORA = "https://loras.example/fashion-style.safetensors"


@pytest.fixture
async def proxy_url(tmp_path: Path, fal: FalHandle, vertex: VertexHandle) -> AsyncIterator[str]:
    """The media routes on the repository's config, over both emulators."""
    async with media_gateway(image_config(tmp_path), provider_env(tmp_path, fal, vertex)) as url:
        yield url


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """An allowed root holding a person, two garments, a mask and a file that is no image."""
    root = tmp_path / "photos"
    root.mkdir()
    (root / "person.png").write_bytes(png(PERSON))
    (root / "shirt.png").write_bytes(png(RED))
    (root / "trousers.png").write_bytes(png(BLUE))
    (root / "mask.png").write_bytes(png((255, 255, 255)))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png " * 20)
    return root


def _options(tmp_path: Path, photos: Path, **extra: Any) -> ImageOptions:
    return ImageOptions(
        config=str(tmp_path / "litellm_config.yaml"), allowed_roots=[str(photos)], **extra
    )


async def _run(handler: Any, event: Request, progress: Progress | None = None) -> Any:
    await handler.start()
    try:
        return await handler.handle(event, (progress or Progress()).context())
    finally:
        await handler.stop()


async def _decoded(tmp_path: Path, artifact_id: str) -> Image.Image:
    data = await LocalArtifactStore(tmp_path / "store").get(artifact_id)
    return Image.open(io.BytesIO(bytes(data)))


def _generation(**fields: Any) -> ImageGenerationRequested:
    return ImageGenerationRequested(event_id="e-1", subject="look-1", **fields)


def _edit(image: MediaRef, prompt: str = "x", **fields: Any) -> ImageEditRequested:
    return ImageEditRequested(
        event_id="e-2", subject="look-2", image=image, prompt=prompt, **fields
    )


def _try_on(person: MediaRef, *garments: MediaRef) -> TryOnRequested:
    return TryOnRequested(event_id="e-3", subject="look-3", person=person, garments=list(garments))


async def test_a_generation_maps_prompt_size_seed_n_and_loras(
    tmp_path: Path, photos: Path, proxy_url: str
) -> None:
    """Two 512x512 images with a seed and a LoRA come back from Fal stored as PNG artifacts,
    with the seed, the Fal price of two megapixels and the stages in order."""
    progress = Progress()
    handler = ImageGeneration(_options(tmp_path, photos), resources_for(proxy_url))
    event = _generation(
        prompt="a camel coat", size="512x512", seed=7, n=2, loras=[LoraRef(path=LORA, scale=0.8)]
    )
    images = await _run(handler, event, progress)
    assert images.served.provider == "fal" and images.served.fallback is False
    assert images.served.model == "fal/fal-ai/flux-lora" and images.served.images == 2
    assert images.served.cost_usd == pytest.approx(0.07)
    assert images.seed == 7 and images.sizes == ["512x512", "512x512"]
    assert [i.content_type for i in images.images] == ["image/png", "image/png"]
    assert (await _decoded(tmp_path, images.images[0].artifact_id)).size == (512, 512)
    assert progress.stages == ["resolving", "calling", "storing"]


async def test_two_lora_sets_give_different_images(
    tmp_path: Path, photos: Path, proxy_url: str
) -> None:
    """The LoRAs reach the provider: the same prompt and seed with another LoRA differ."""
    handler = ImageGeneration(_options(tmp_path, photos), resources_for(proxy_url))
    digests = []
    for scale in (0.5, 1.5):
        event = _generation(
            prompt="a coat", size="512x512", seed=3, loras=[LoraRef(path=LORA, scale=scale)]
        )
        images = await _run(handler, event)
        digests.append((await _decoded(tmp_path, images.images[0].artifact_id)).tobytes())
    assert digests[0] != digests[1]


async def test_a_lora_path_that_is_no_url_fails_naming_it(
    tmp_path: Path, photos: Path, proxy_url: str, fal: FalHandle
) -> None:
    """The proxy refuses a LoRA path Fal cannot load, and the error names `loras[0].path`."""
    handler = ImageGeneration(_options(tmp_path, photos), resources_for(proxy_url))
    event = _generation(prompt="a coat", loras=[LoraRef(path="my-style-lora")])
    with pytest.raises(ProviderBadRequest, match=r"loras\[0\]\.path"):
        await _run(handler, event)
    assert fal.queue_stats()["jobs"] == 0


async def test_an_unknown_training_job_as_lora_fails_with_lora_not_found(
    tmp_path: Path, photos: Path, proxy_url: str
) -> None:
    """A LoRA naming a fine-tuning job the gateway does not know is LoraNotFound, naming it."""
    handler = ImageGeneration(_options(tmp_path, photos), resources_for(proxy_url))
    event = _generation(prompt="a coat", loras=[LoraRef(fine_tuning_job="ftjob-nope")])
    with pytest.raises(LoraNotFound, match=r"loras\[0\].*ftjob-nope"):
        await _run(handler, event)


async def test_an_edit_with_a_mask_is_an_inpainting_at_the_images_size(
    tmp_path: Path, photos: Path, proxy_url: str
) -> None:
    """An edit sends the image, its mask and `n` as a form; Fal answers `n` images at the
    image's size."""
    handler = ImageEditing(_options(tmp_path, photos), resources_for(proxy_url))
    event = _edit(
        MediaRef(path=str(photos / "person.png")),
        "make the shirt green",
        mask=MediaRef(path=str(photos / "mask.png")),
        n=2,
    )
    images = await _run(handler, event)
    assert images.served.provider == "fal" and images.sizes == ["64x96", "64x96"]
    assert (await _decoded(tmp_path, images.images[0].artifact_id)).size == (64, 96)


async def test_a_mask_of_another_size_fails_naming_the_mask(
    tmp_path: Path, photos: Path, proxy_url: str
) -> None:
    """The proxy's check that mask and image match comes back naming `mask`."""
    (photos / "small-mask.png").write_bytes(png((255, 255, 255), (32, 32)))
    handler = ImageEditing(_options(tmp_path, photos), resources_for(proxy_url))
    event = _edit(
        MediaRef(path=str(photos / "person.png")),
        mask=MediaRef(path=str(photos / "small-mask.png")),
    )
    with pytest.raises(ProviderBadRequest, match="mask"):
        await _run(handler, event)


async def test_a_try_on_sends_the_person_then_the_garments_in_one_call(
    tmp_path: Path, photos: Path, proxy_url: str, vertex: VertexHandle
) -> None:
    """A person and two garments reach Gemini as one call with three images, the default
    instruction standing in for none."""
    handler = VirtualTryOn(_options(tmp_path, photos), resources_for(proxy_url))
    event = _try_on(
        MediaRef(path=str(photos / "person.png")),
        MediaRef(path=str(photos / "shirt.png")),
        MediaRef(path=str(photos / "trousers.png")),
    )
    images = await _run(handler, event)
    assert images.served.model == "vertex/gemini-3-pro-image-preview"
    assert images.served.cost_usd == pytest.approx(0.134)
    [call] = vertex.calls()
    assert call["images"] == 3
    assert (await _decoded(tmp_path, images.images[0].artifact_id)).format == "PNG"


@pytest.mark.parametrize(
    ("ref", "error", "names"),
    [
        ("broken.png", ImageUndecodable, "the person image is not a decodable image"),
        ("missing.png", InputNotFound, "no file"),
        ("/etc/hostname", InputRefused, "outside the allowed roots"),
    ],
)
async def test_a_bad_person_image_fails_before_any_provider_call(
    tmp_path: Path,
    photos: Path,
    *,
    proxy_url: str,
    vertex: VertexHandle,
    ref: str,
    error: type[Exception],
    names: str,
) -> None:
    """An undecodable, missing or out-of-root person image fails naming why; Vertex is never
    called."""
    handler = VirtualTryOn(_options(tmp_path, photos), resources_for(proxy_url))
    path = ref if ref.startswith("/") else str(photos / ref)
    event = _try_on(MediaRef(path=path), MediaRef(path=str(photos / "shirt.png")))
    with pytest.raises(error, match=names):
        await _run(handler, event)
    assert vertex.calls() == []


async def test_a_missing_artifact_fails_with_input_not_found(
    tmp_path: Path, photos: Path, proxy_url: str
) -> None:
    """An artifact id the store does not hold is InputNotFound naming the input."""
    handler = ImageEditing(_options(tmp_path, photos), resources_for(proxy_url))
    with pytest.raises(InputNotFound, match="the image to edit"):
        await _run(handler, _edit(MediaRef(artifact_id="a" * 64)))


async def test_a_stored_image_artifact_is_edited(
    tmp_path: Path, photos: Path, proxy_url: str
) -> None:
    """An image put in the configured store is read back by its artifact id and edited."""
    store = LocalArtifactStore(tmp_path / "store")
    ref = await store.put(png(RED, (80, 80)), "image/png")
    handler = ImageEditing(_options(tmp_path, photos), resources_for(proxy_url))
    images = await _run(handler, _edit(MediaRef(artifact_id=ref.id)))
    assert images.sizes == ["80x80"]


async def test_a_private_address_url_is_refused_without_a_fetch(
    tmp_path: Path, photos: Path, proxy_url: str
) -> None:
    """A garment URL on a loopback address is InputRefused naming the garment."""
    handler = VirtualTryOn(_options(tmp_path, photos), resources_for(proxy_url))
    event = _try_on(
        MediaRef(path=str(photos / "person.png")), MediaRef(url="http://127.0.0.1:9/shirt.png")
    )
    with pytest.raises(InputRefused, match="garment image 0 URL was refused"):
        await _run(handler, event)


async def test_an_oversized_download_is_refused(
    tmp_path: Path, photos: Path, proxy_url: str
) -> None:
    """A URL whose body is over `fetch_max_bytes` is refused naming the input."""
    server_module = sibling("artifacts", "artifact_http_server")
    big = server_module.Route(headers=(("Content-Type", "image/png"),), body_size=200_000)
    async with server_module.tiny_server({"/big.png": big}) as server:
        options = _options(tmp_path, photos, fetch_allow=["127.0.0.1"], fetch_max_bytes=50_000)
        handler = ImageEditing(options, resources_for(proxy_url))
        with pytest.raises(InputRefused, match="the image to edit URL was refused"):
            await _run(handler, _edit(MediaRef(url=server.url("/big.png"))))


def test_an_image_over_the_pixel_limit_is_refused_before_decoding() -> None:
    """An image with more pixels than `max_pixels` is ImageTooLarge, naming its size."""
    with pytest.raises(ImageTooLarge, match="64x96"):
        decode_image(png(RED), noun="the image", max_pixels=1000)


def test_a_gif_is_not_an_accepted_image() -> None:
    """A decodable image of a type the providers do not take is refused naming the type."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="GIF")
    with pytest.raises(ImageUndecodable, match="GIF"):
        decode_image(out.getvalue(), noun="the image", max_pixels=1000)


def test_event_schemas_name_every_kind() -> None:
    """The published schema holds each kind's request and both of its results."""
    schemas = event_schemas()
    names = set(schemas["$defs"])
    assert {"ImageGenerationRequested", "ImageEditRequested", "TryOnRequested"} <= names
    assert {"ImageGenerationSucceeded", "ImageEditFailed", "TryOnSucceeded", "TryOnFailed"} <= names
