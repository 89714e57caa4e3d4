"""Image generation, editing and virtual try-on as Kafka request kinds.

Why handlers of their own: a chat completion's answer is text, but these answer with images,
which never travel inside Kafka records. Each handler resolves its input images by reference
and checks that they decode (a photo that will never decode fails at once, before anything is
paid for), asks the proxy's image route for the task (`POST /v1/images/generations`, or the
multipart `/v1/images/edits`, person first then garments for a try-on, as the
`virtual-try-on` task expects), stores every image the provider made as an artifact with its
real content type, and answers with the artifacts and the proxy's accounting. Providers,
fallbacks and prices stay a matter of litellm_config.yaml: the proxy owns them.

    gateway_settings:
      kafka:
        handlers:
          - factory: pipelines.images:ImageGeneration
            tasks: [image-generation]
          - factory: pipelines.images:VirtualTryOn
            tasks: [virtual-try-on]
            options: {allowed_roots: [/data/photos]}

LoRAs: a `path` is sent as is (the proxy and Fal check it, and a 400 names `loras[i].path`);
a `fine_tuning_job` is looked up on the proxy's fine-tuning route, and an unknown job, or one
that made no LoRA (yet), fails the request with `LoraNotFound` naming it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import warnings
from typing import Annotated, Any, ClassVar

import msgspec
from PIL import Image

from consumers.errors import ProviderNotFound
from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.kinds import EventKind, kinds_schema
from consumers.proxy_client import ProxyResponse
from pipelines._errors import ImageTooLarge, ImageUndecodable, LoraNotFound, OutputUnusable
from pipelines._image_schemas import (
    DEFAULT_EDIT_TASK,
    DEFAULT_GENERATION_TASK,
    DEFAULT_TRY_ON_TASK,
    ImageEditFailed,
    ImageEditRequested,
    ImageEditSucceeded,
    ImageGenerationFailed,
    ImageGenerationRequested,
    ImageGenerationSucceeded,
    Images,
    LoraRef,
    TryOnFailed,
    TryOnRequested,
    TryOnSucceeded,
)
from pipelines._media import MediaHandler, MediaOptions
from pipelines._proxy_http import served_from
from pipelines._refs import MediaRef
from schemas import Request

__all__ = [
    "ACCEPTED_IMAGES",
    "DEFAULT_EDIT_TASK",
    "DEFAULT_GENERATION_TASK",
    "DEFAULT_TRY_ON_TASK",
    "IMAGE_EDIT",
    "IMAGE_GENERATION",
    "IMAGE_KINDS",
    "TRY_ON",
    "ImageEditing",
    "ImageGeneration",
    "ImageOptions",
    "Picture",
    "VirtualTryOn",
    "decode_image",
    "event_schemas",
]

ACCEPTED_IMAGES = ("image/png", "image/jpeg", "image/webp")
# What a try-on instruction defaults to: the task's Gemini model needs a prompt.
_TRY_ON_INSTRUCTION = "Dress the person in the garments, keeping their pose, face and background."

IMAGE_GENERATION: EventKind[ImageGenerationRequested, Images] = EventKind(
    request=ImageGenerationRequested,
    payload=Images,
    succeeded=ImageGenerationSucceeded,
    failed=ImageGenerationFailed,
)
IMAGE_EDIT: EventKind[ImageEditRequested, Images] = EventKind(
    request=ImageEditRequested, payload=Images, succeeded=ImageEditSucceeded, failed=ImageEditFailed
)
TRY_ON: EventKind[TryOnRequested, Images] = EventKind(
    request=TryOnRequested, payload=Images, succeeded=TryOnSucceeded, failed=TryOnFailed
)
IMAGE_KINDS: tuple[EventKind[Any, Any], ...] = (IMAGE_GENERATION, IMAGE_EDIT, TRY_ON)


def event_schemas() -> dict[str, Any]:
    """JSON Schema of the image kinds' events (`consumers.kinds.kinds_schema`)."""
    return kinds_schema(IMAGE_KINDS)


class ImageOptions(MediaOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A media handler's options, and the largest input image it decodes."""

    # 40 MP: above any camera photo a catalogue holds, far below a decompression bomb.
    max_pixels: Annotated[int, msgspec.Meta(gt=0)] = 40_000_000


class Picture(msgspec.Struct, frozen=True):
    """An image that decodes: its bytes, its real content type and its size."""

    data: bytes
    content_type: str
    width: int
    height: int


def decode_image(data: bytes, *, noun: str, max_pixels: int) -> Picture:
    """`data` checked to be a whole image (its header read first, so a bomb is refused before
    its pixels are); raises ImageUndecodable / ImageTooLarge naming `noun`."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between its own limit and twice it: refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height, fmt = image.width, image.height, image.format
                if width * height > max_pixels:
                    raise ImageTooLarge(
                        f"{noun} is {width}x{height}, more than {max_pixels} pixels"
                    )
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{noun} has more pixels than an image may have") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's ways of saying "not an image"
        raise ImageUndecodable(f"{noun} is not a decodable image") from exc
    if width == 0 or height == 0:
        raise ImageUndecodable(f"{noun} has no pixels")
    content_type = Image.MIME.get(fmt or "")
    if content_type not in ACCEPTED_IMAGES:
        raise ImageUndecodable(f"{noun} is {fmt}, expected PNG, JPEG or WebP")
    return Picture(data, content_type, width, height)


class _ImageHandler(MediaHandler):
    """Resolves and checks input images, calls an image route, stores what it returns."""

    kind: ClassVar[EventKind[Any, Images]]

    def __init__(
        self,
        options: ImageOptions,
        resources: HandlerResources,
    ) -> None:
        super().__init__(options, resources)
        self._max_pixels = options.max_pixels

    async def _picture(self, ref: MediaRef, noun: str) -> Picture:
        media = await self._artifacts.resolver.resolve(ref, accept=ACCEPTED_IMAGES, noun=noun)
        return await asyncio.to_thread(
            decode_image, media.data, noun=f"the {noun}", max_pixels=self._max_pixels
        )

    async def _pictures(self, refs: list[tuple[MediaRef, str]]) -> list[Picture]:
        return list(await asyncio.gather(*(self._picture(ref, noun) for ref, noun in refs)))

    async def _edit(
        self,
        event: Request,
        ctx: HandlerContext,
        images: list[Picture],
        *,
        fields: dict[str, Any],
        mask: Picture | None = None,
    ) -> Images:
        # One image goes as `image`; several as `image[]` in order (what the openai SDK sends
        # for a list), which the proxy reads as the person first, then the garments.
        name = "image" if len(images) == 1 else "image[]"
        files: list[tuple[str, tuple[str, bytes, str]]] = [
            (name, (f"image-{i}", p.data, p.content_type)) for i, p in enumerate(images)
        ]
        if mask is not None:
            files.append(("mask", ("mask", mask.data, mask.content_type)))
        data = {k: str(v) for k, v in fields.items() if v is not None}
        data |= {"model": event.task, "response_format": "b64_json"}
        await ctx.report_progress("calling", 0.2, f"{len(images)} image(s) to {event.task}")
        response = await self._proxy.call(
            "POST", "/v1/images/edits", event, ctx, data=data, files=files
        )
        return await self._stored(event, ctx, response)

    async def _stored(self, event: Request, ctx: HandlerContext, response: ProxyResponse) -> Images:
        """Every image of the answer, checked and stored, with the proxy's accounting."""
        try:
            body = response.json()
            entries = body["data"]
            encoded = [str(entry["b64_json"]) for entry in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise OutputUnusable("the proxy's answer has no b64_json images") from exc
        if not encoded:
            raise OutputUnusable("the proxy answered without any image")
        await ctx.report_progress("storing", 0.8, f"storing {len(encoded)} image(s)")
        pictures = []
        for index, text in enumerate(encoded):
            try:
                raw = base64.b64decode(text, validate=True)
            except binascii.Error as exc:
                raise OutputUnusable(f"image {index} of the answer is not base64") from exc
            try:
                pictures.append(
                    await asyncio.to_thread(
                        decode_image, raw, noun=f"image {index} of the answer", max_pixels=1 << 30
                    )
                )
            except (ImageUndecodable, ImageTooLarge) as exc:
                raise OutputUnusable(str(exc)) from exc
        stored = [await self._artifacts.keep(p.data, p.content_type) for p in pictures]
        revised = next((e.get("revised_prompt") for e in entries if e.get("revised_prompt")), None)
        seed = body.get("seed")
        return Images(
            images=stored,
            sizes=[f"{p.width}x{p.height}" for p in pictures],
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            revised_prompt=revised if isinstance(revised, str) else None,
            served=served_from(
                response, provider=self.provider, model=event.task, images=len(stored)
            ),
        )


class ImageGeneration(_ImageHandler):
    """`image.generation.requested` -> the generated images, stored as artifacts."""

    kind = IMAGE_GENERATION

    async def handle(self, event: ImageGenerationRequested, ctx: HandlerContext) -> Images:
        await ctx.report_progress("resolving", 0.0, f"{len(event.loras)} LoRA(s)")
        loras = [await self._lora(lora, i, event, ctx) for i, lora in enumerate(event.loras)]
        body: dict[str, Any] = {
            "model": event.task,
            "prompt": event.prompt,
            "n": event.n,
            "response_format": "b64_json",
        }
        optional = {"size": event.size, "seed": event.seed, "loras": loras or None}
        body |= {k: v for k, v in optional.items() if v is not None}
        await ctx.report_progress("calling", 0.2, f"{event.n} image(s) from {event.task}")
        response = await self._proxy.call("POST", "/v1/images/generations", event, ctx, json=body)
        return await self._stored(event, ctx, response)

    async def _lora(
        self, lora: LoraRef, index: int, event: Request, ctx: HandlerContext
    ) -> dict[str, Any]:
        """The `{path, scale}` Fal takes; a training job's id becomes the LoRA it made."""
        if lora.path is not None:
            return {"path": lora.path, "scale": lora.scale}
        job = lora.fine_tuning_job
        where = f"loras[{index}]: fine-tuning job {job!r}"
        try:
            response = await self._proxy.call("GET", f"/v1/fine_tuning/jobs/{job}", event, ctx)
        except ProviderNotFound as exc:
            raise LoraNotFound(f"{where} is unknown") from exc
        answer = response.json()
        path = answer.get("fine_tuned_model") if isinstance(answer, dict) else None
        if not isinstance(path, str) or not path:
            status = answer.get("status") if isinstance(answer, dict) else None
            raise LoraNotFound(f"{where} has no LoRA (status {status})")
        return {"path": path, "scale": lora.scale}


class ImageEditing(_ImageHandler):
    """`image.edit.requested` -> the edited images (inpainted when a mask is given)."""

    kind = IMAGE_EDIT

    async def handle(self, event: ImageEditRequested, ctx: HandlerContext) -> Images:
        await ctx.report_progress("resolving", 0.0, "reading the image to edit")
        refs = [(event.image, "image to edit")]
        if event.mask is not None:
            refs.append((event.mask, "mask"))
        image, *mask = await self._pictures(refs)
        fields = {"prompt": event.prompt, "n": event.n, "size": event.size}
        return await self._edit(event, ctx, [image], fields=fields, mask=mask[0] if mask else None)


class VirtualTryOn(_ImageHandler):
    """`tryon.requested` -> the person dressed in the garments."""

    kind = TRY_ON

    async def handle(self, event: TryOnRequested, ctx: HandlerContext) -> Images:
        await ctx.report_progress(
            "resolving", 0.0, f"the person and {len(event.garments)} garment(s)"
        )
        refs = [(event.person, "person image")]
        refs += [(g, f"garment image {i}") for i, g in enumerate(event.garments)]
        pictures = await self._pictures(refs)
        fields = {"prompt": event.instruction or _TRY_ON_INSTRUCTION}
        return await self._edit(event, ctx, pictures, fields=fields)
