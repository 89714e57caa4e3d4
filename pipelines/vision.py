"""Face detection and segmentation masks as Kafka request kinds: an image reference in, pixel
boxes (and a stored mask) out.

Why handlers of their own: the image travels by reference (`pipelines._refs`), is checked and
decoded here before any provider is paid, and a mask must be stored as an artifact rather than
sent in a record. By default the proxy's chat tasks `face-detection` / `segmentation` answer
(the image as a data URL in the user message, JSON of `plugins.fal.vision`'s schemas back), so
the provider stays a litellm_config.yaml matter. With `local:` the handler runs a model built
by `gateway models build` in this process instead (`plugins.onnx`, with its micro-batching; no
HTTP hop): `served.provider` is then "onnx" and the cost 0. Both paths fill the same Structs.

    gateway_settings:
      kafka:
        handlers:
          - factory: pipelines.vision:FaceDetection
            tasks: [face-detection]
            options: {allowed_roots: [/data/images], local: {model: blazeface-full-range}}
          - factory: pipelines.vision:Segmenter
            tasks: [segmentation]
            options: {allowed_roots: [/data/images]}
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import msgspec

from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.kinds import EventKind, kinds_schema
from core.config import ConfigError
from pipelines._errors import (
    AnswerInvalid,
    InputRefused,
    LocalModelBusy,
    LocalModelFailed,
    PromptUnsupported,
)
from pipelines._media import MediaHandler, MediaOptions, config_of
from pipelines._proxy_http import Served, served_from
from pipelines._refs import MediaRef
from pipelines._vision_answers import (
    DEFAULT_MAX_PIXELS,
    IMAGE_TYPES,
    decode_image,
    faces_from_answer,
    faces_from_local,
    mask_png,
    masks_from_answer,
    merge_masks,
    region_of_mask,
    select_faces,
)
from pipelines._vision_schemas import (
    Faces,
    FacesFailed,
    FacesRequested,
    FacesSucceeded,
    Segmentation,
    SegmentationFailed,
    SegmentationRequested,
    SegmentationSucceeded,
)
from plugins.onnx.errors import OnnxError, OnnxOverloaded, OnnxStopped
from plugins.onnx.images import DecodedImage
from plugins.onnx.provider import OnnxModels
from plugins.onnx.vision import ImageModel
from schemas import Request, Usage

__all__ = [
    "FACES",
    "SEGMENTATION",
    "VISION_KINDS",
    "FaceDetection",
    "LocalModel",
    "Segmenter",
    "VisionOptions",
    "event_schemas",
]

FACES: EventKind[FacesRequested, Faces] = EventKind(
    request=FacesRequested, payload=Faces, succeeded=FacesSucceeded, failed=FacesFailed
)
SEGMENTATION: EventKind[SegmentationRequested, Segmentation] = EventKind(
    request=SegmentationRequested,
    payload=Segmentation,
    succeeded=SegmentationSucceeded,
    failed=SegmentationFailed,
)
VISION_KINDS: tuple[EventKind[Any, Any], ...] = (FACES, SEGMENTATION)

# What the self-hosted person segmenter (MediaPipe selfie segmentation) can be asked for.
_PERSON_PROMPTS = frozenset({"person", "persons", "people", "human", "humans", "selfie"})


def event_schemas() -> dict[str, Any]:
    """JSON Schema of the vision kinds' events (`consumers.kinds.kinds_schema`)."""
    return kinds_schema(VISION_KINDS)


class LocalModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A model of `gateway_settings.onnx.models_dir` run in this process instead of the proxy."""

    model: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class VisionOptions(MediaOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A vision handler's options: the media ones, the pixel limit, and the local model."""

    # Larger images are refused from their header, before their pixels are decoded.
    max_pixels: Annotated[int, msgspec.Meta(gt=0)] = DEFAULT_MAX_PIXELS
    local: LocalModel | None = None


class _Choice(msgspec.Struct, frozen=True):
    message: dict[str, Any]


class _ChatAnswer(msgspec.Struct, frozen=True):
    choices: list[_Choice]
    usage: Usage | None = None


@contextmanager
def _local_errors(model: str) -> Iterator[None]:
    """The in-process model's errors as the pipelines' (retriable when it is only busy)."""
    try:
        yield
    except (OnnxOverloaded, OnnxStopped) as exc:
        raise LocalModelBusy(f"local model {model!r}: {exc.message}") from exc
    except OnnxError as exc:
        raise LocalModelFailed(f"local model {model!r}: {exc.message}"[:500]) from exc


class _VisionHandler(MediaHandler):
    """Resolves and decodes the image, then asks the proxy's task or the local model."""

    _local_kind: Literal["face-detection", "segmentation"]

    def __init__(
        self,
        options: VisionOptions,
        resources: HandlerResources,
    ) -> None:
        super().__init__(options, resources)
        self._vision = options
        # Read at start-up, so a bad onnx section stops the process then.
        self._models = (
            OnnxModels.from_config(config_of(options, resources)) if options.local else None
        )
        self._runner: ImageModel[Any] | None = None

    @property
    def provider(self) -> str:
        return "onnx" if self._vision.local is not None else super().provider

    @property
    def local_model(self) -> ImageModel[Any] | None:
        """The in-process model once started (its batcher's stats show batches forming)."""
        return self._runner

    async def start(self) -> None:
        await super().start()
        if self._models is not None and self._vision.local is not None:
            name = self._vision.local.model
            try:
                self._runner = await self._models.image_model(name, self._local_kind)
            except OnnxError as exc:
                raise ConfigError(f"{type(self).__name__} options.local: {exc.message}") from exc

    async def stop(self) -> None:
        self._runner = None
        if self._models is not None:
            await self._models.stop()
        await super().stop()

    async def _input(self, ref: MediaRef, ctx: HandlerContext) -> tuple[bytes, str, DecodedImage]:
        await ctx.report_progress("resolving", 0.0, "locating the image")
        media = await self._artifacts.resolver.resolve(ref, accept=IMAGE_TYPES, noun="image")
        # Only the local model reads the pixels (a provider gets the bytes): it decides how
        # few a JPEG may be decoded to.
        at_least = self._runner.input_side if self._runner is not None else None
        decoded = await asyncio.to_thread(
            decode_image, media.data, max_pixels=self._vision.max_pixels, at_least=at_least
        )
        return media.data, media.content_type.split(";", 1)[0].strip(), decoded

    def _local_served(self) -> Served:
        assert self._vision.local is not None
        return Served(provider="onnx", model=self._vision.local.model, images=1, cost_usd=0.0)

    async def _infer(self, decoded: DecodedImage) -> Any:
        assert self._runner is not None and self._vision.local is not None
        with _local_errors(self._vision.local.model):
            return await self._runner.infer(decoded.image, decoded.size)

    async def _ask(
        self, event: Request, ctx: HandlerContext, prompt: str, data: bytes, content_type: str
    ) -> tuple[str | None, Served]:
        """The chat task's answer text for the image, and who served it."""
        url = f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
        # JSON text: the vision tasks read a text starting with "{" as their options, so a
        # plain prompt could be misread; as JSON it always means what it says.
        text = json.dumps({"prompt": prompt})
        body = {
            "model": event.task,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": text},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
        }
        response = await self._proxy.call("POST", "/v1/chat/completions", event, ctx, json=body)
        try:
            answer = msgspec.json.decode(response.content, type=_ChatAnswer)
            content = answer.choices[0].message.get("content") if answer.choices else None
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise AnswerInvalid(f"the proxy's answer is not a chat completion: {exc}") from exc
        served = served_from(
            response, provider=self.provider, model=event.task, usage=answer.usage, images=1
        )
        return content if isinstance(content, str) else None, served


class FaceDetection(_VisionHandler):
    """`faces.detection.requested` -> the faces' pixel boxes (landmarks from BlazeFace)."""

    kind = FACES
    _local_kind = "face-detection"

    async def handle(self, event: FacesRequested, ctx: HandlerContext) -> Faces:
        data, content_type, decoded = await self._input(event.image, ctx)
        width, height = decoded.size
        await ctx.report_progress("detecting", 0.2, f"{width}x{height} image, {self.provider}")
        if self._runner is not None:
            found = faces_from_local(await self._infer(decoded), width, height)
            served = self._local_served()
        else:
            content, served = await self._ask(event, ctx, "face", data, content_type)
            found = faces_from_answer(content, width, height)
        faces = select_faces(found, event.min_score, event.max_faces)
        return Faces(faces=faces, width=width, height=height, served=served)


class Segmenter(_VisionHandler):
    """`segmentation.requested` -> one mask (an artifact) of what the prompt names."""

    kind = SEGMENTATION
    _local_kind = "segmentation"

    async def handle(self, event: SegmentationRequested, ctx: HandlerContext) -> Segmentation:
        if self._runner is not None and event.prompt.strip().lower() not in _PERSON_PROMPTS:
            raise PromptUnsupported(
                f"the local model segments people only; {event.prompt[:60]!r} needs the "
                "proxy's segmentation task"
            )
        data, content_type, decoded = await self._input(event.image, ctx)
        width, height = decoded.size
        await ctx.report_progress("segmenting", 0.2, f"{width}x{height} image, {self.provider}")
        if self._runner is not None:
            result = await self._infer(decoded)
            mask = result.mask
            regions = region_of_mask(mask, result.score)
            served = self._local_served()
        else:
            content, served = await self._ask(event, ctx, event.prompt, data, content_type)
            urls, regions = masks_from_answer(content, width, height)
            pngs = [await self._mask_bytes(url) for url in urls]
            mask = await asyncio.to_thread(merge_masks, pngs, width, height)
        await ctx.report_progress("storing", 0.9, "storing the mask")
        png = await asyncio.to_thread(mask_png, mask)
        artifact = await self._artifacts.keep(png, "image/png")
        return Segmentation(
            mask=artifact,
            width=width,
            height=height,
            foreground_fraction=round(float(mask.mean()), 6),
            boxes=regions,
            served=served,
        )

    async def _mask_bytes(self, url: str) -> bytes:
        """A mask the answer names: inline, or fetched under the handler's fetch rules."""
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            try:
                if ";base64" not in header:
                    raise ValueError("not base64")
                return base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise AnswerInvalid("a mask's data URL is not base64") from exc
        if not url.startswith(("http://", "https://")):
            raise AnswerInvalid("a mask URL is neither a data: nor an http(s) URL")
        try:
            media = await self._artifacts.resolver.resolve(
                MediaRef(url=url), accept=["image/*"], noun="mask"
            )
        except InputRefused as exc:
            # The provider's link, not the caller's input: the same answer fails the same way.
            raise AnswerInvalid(str(exc)) from exc
        return media.data
