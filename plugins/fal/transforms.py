"""Pure transforms between the OpenAI images API and Fal's queue and Flux models (no I/O).

Why it exists: every rule of the translation (which OpenAI ``size`` becomes which
``image_size``, what a valid LoRA is, how Fal's status and result bodies are read) is a plain
function, testable without a network and shared by the gateway route and any other caller.

Requests: ``parse_image_request`` turns an OpenAI ``images.generate`` body (LoRAs and Fal's
options arrive as extra body fields) into an ``ImageRequest``, raising ``FalInvalidRequest``
naming the offending parameter; ``flux_input`` is the Fal input for it.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from plugins.fal.errors import FalInvalidRequest, FalJobFailed, FalProtocolError

__all__ = [
    "MAX_IMAGES",
    "QUEUE_BASE",
    "ImageRequest",
    "Lora",
    "QueueHandle",
    "QueueStatus",
    "app_of",
    "flux_input",
    "megapixels",
    "openai_images",
    "parse_image_request",
    "parse_status",
    "parse_submit",
    "submit_url",
]

QUEUE_BASE = "https://queue.fal.run"
MAX_IMAGES = 4
MAX_LORAS = 5
_MAX_SCALE = 4.0
_SIDE = (64, 2048)
# OpenAI sizes -> Fal presets where one matches; other WxH values become width/height.
_OPENAI_PRESETS = {"1024x1024": "square_hd", "512x512": "square"}
_FAL_PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
_WXH = re.compile(r"^(\d{2,5})x(\d{2,5})$")
_URL = re.compile(r"^https?://[^\s/]+\S*$")


class Lora(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    scale: float = 1.0


class ImageRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One validated image-generation request."""

    prompt: str
    n: int
    width: int
    height: int
    # The Fal preset name when the size is one, else None (width/height are sent).
    preset: str | None
    response_format: Literal["url", "b64_json"]
    loras: tuple[Lora, ...] = ()
    seed: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    output_format: Literal["png", "jpeg"] = "png"
    enable_safety_checker: bool = True
    # Edits only: the input image and mask as data URIs, and how far to move from the image.
    image: str | None = None
    mask: str | None = None
    strength: float | None = None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


class QueueHandle(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


class QueueStatus(msgspec.Struct, frozen=True, kw_only=True):
    state: Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    position: int | None = None
    logs: tuple[str, ...] = ()
    error: str | None = None
    error_type: str | None = None


def _bad(message: str, param: str) -> FalInvalidRequest:
    return FalInvalidRequest(message, param=param)


def _number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _bad(f"'{name}' must be a number from {low:g} to {high:g}", name)
    return float(value)


def _size(value: Any) -> tuple[int, int, str | None]:
    if value is None or value == "auto":
        return 1024, 1024, "square_hd"
    if not isinstance(value, str):
        raise _bad("'size' must be a string such as '1024x1024'", "size")
    if value in _FAL_PRESETS:
        return (*_FAL_PRESETS[value], value)
    match = _WXH.match(value)
    if match is None:
        raise _bad(f"unknown size {value!r}: use WIDTHxHEIGHT or a Fal preset", "size")
    width, height = int(match[1]), int(match[2])
    if not all(_SIDE[0] <= side <= _SIDE[1] for side in (width, height)):
        raise _bad(f"size {value!r}: each side must be {_SIDE[0]} to {_SIDE[1]} pixels", "size")
    return width, height, _OPENAI_PRESETS.get(value)


def _loras(value: Any) -> tuple[Lora, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _bad("'loras' must be a list of {path, scale}", "loras")
    if len(value) > MAX_LORAS:
        raise _bad(f"at most {MAX_LORAS} LoRAs per request", "loras")
    loras = []
    for index, item in enumerate(value):
        where = f"loras[{index}]"
        if not isinstance(item, Mapping):
            raise _bad(f"{where} must be an object with 'path' and 'scale'", where)
        path = item.get("path")
        if not isinstance(path, str) or not _URL.match(path):
            raise _bad(f"{where}.path must be an http(s) URL of a LoRA file", f"{where}.path")
        scale = item.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise _bad(f"{where}.scale must be a number", f"{where}.scale")
        if not 0 <= scale <= _MAX_SCALE or math.isnan(scale):
            raise _bad(f"{where}.scale must be from 0 to {_MAX_SCALE:g}", f"{where}.scale")
        loras.append(Lora(path=path, scale=float(scale)))
    return tuple(loras)


def parse_image_request(body: Mapping[str, Any]) -> ImageRequest:
    """Validate an OpenAI images.generate body (plus Fal's extra fields) for Flux."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _bad("'prompt' is required and must be a non-empty string", "prompt")
    n = body.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
        raise _bad(f"'n' must be an integer from 1 to {MAX_IMAGES}", "n")
    response_format: Literal["url", "b64_json"]
    match body.get("response_format") or "url":
        case "url" | "b64_json" as response_format:
            pass
        case _:
            raise _bad("'response_format' must be 'url' or 'b64_json'", "response_format")
    output_format: Literal["png", "jpeg"]
    match body.get("output_format") or "png":
        case "png" | "jpeg" as output_format:
            pass
        case _:
            raise _bad("'output_format' must be 'png' or 'jpeg'", "output_format")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _bad("'seed' must be an integer", "seed")
    steps = _number(body, "num_inference_steps", 1, 50)
    if steps is not None and not steps.is_integer():
        raise _bad("'num_inference_steps' must be an integer", "num_inference_steps")
    safety = body.get("enable_safety_checker", True)
    if not isinstance(safety, bool):
        raise _bad("'enable_safety_checker' must be a boolean", "enable_safety_checker")
    width, height, preset = _size(body.get("size"))
    return ImageRequest(
        prompt=prompt,
        n=n,
        width=width,
        height=height,
        preset=preset,
        response_format=response_format,
        loras=_loras(body.get("loras")),
        seed=seed,
        steps=int(steps) if steps is not None else None,
        guidance_scale=_number(body, "guidance_scale", 0, 35),
        output_format=output_format,
        enable_safety_checker=safety,
    )


def megapixels(request: ImageRequest) -> int:
    """Billed megapixels of one image: Fal rounds each image up to whole megapixels."""
    return max(1, math.ceil(request.width * request.height / 1_000_000))


def app_of(model: str) -> str:
    """``fal/fal-ai/flux-lora`` (LiteLLM's name in config) -> ``fal-ai/flux-lora``."""
    return model.split("/", 1)[1] if model.startswith("fal/") else model


_EDIT_PATHS = ("image-to-image", "inpainting")


def submit_url(api_base: str | None, model: str, request: ImageRequest | None = None) -> str:
    """Where to submit; an edit goes to the model's image-to-image (or, with a mask,
    inpainting) endpoint unless the configured model names one already."""
    app = app_of(model)
    if request is not None and request.image is not None and not app.endswith(_EDIT_PATHS):
        app += "/inpainting" if request.mask is not None else "/image-to-image"
    return f"{(api_base or QUEUE_BASE).rstrip('/')}/{app}"


def flux_input(request: ImageRequest) -> dict[str, Any]:
    """The Fal input; b64_json asks for inline images (sync_mode) so nothing is fetched twice."""
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "num_images": request.n,
        "image_size": request.preset or {"width": request.width, "height": request.height},
        "output_format": request.output_format,
        "enable_safety_checker": request.enable_safety_checker,
        "sync_mode": request.response_format == "b64_json",
    }
    if request.loras:
        body["loras"] = [{"path": lora.path, "scale": lora.scale} for lora in request.loras]
    optional = (
        ("seed", request.seed),
        ("num_inference_steps", request.steps),
        ("guidance_scale", request.guidance_scale),
        ("image_url", request.image),
        ("mask_url", request.mask),
        ("strength", request.strength),
    )
    body.update({name: value for name, value in optional if value is not None})
    return body


def parse_submit(body: Any) -> QueueHandle:
    try:
        return msgspec.convert(body, QueueHandle, strict=False)
    except msgspec.ValidationError as exc:
        raise FalProtocolError(f"Fal submit answer lacks queue URLs: {exc}") from exc


def parse_status(body: Any) -> QueueStatus:
    if not isinstance(body, Mapping) or body.get("status") not in (
        "IN_QUEUE",
        "IN_PROGRESS",
        "COMPLETED",
    ):
        raise FalProtocolError(f"unknown Fal queue status: {str(body)[:200]}")
    logs = tuple(
        str(entry.get("message", ""))
        for entry in body.get("logs") or ()
        if isinstance(entry, Mapping)
    )
    return QueueStatus(
        state=body["status"],
        position=body.get("queue_position"),
        logs=logs,
        error=body.get("error"),
        error_type=body.get("error_type"),
    )


def inline_b64(url: str) -> str | None:
    """The base64 payload of a ``data:`` URI, None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, _, payload = url.partition(",")
    return payload if header.endswith(";base64") else base64.b64encode(payload.encode()).decode()


def openai_images(
    result: Any, request: ImageRequest, created: int, fetched: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The OpenAI images response for a Fal result; ``fetched`` holds base64 for image URLs
    that were not inline. Fal's seed and NSFW flags ride along as extra fields."""
    if not isinstance(result, Mapping) or not isinstance(result.get("images"), list):
        raise FalProtocolError("Fal result has no 'images' list")
    if not result["images"]:
        raise FalJobFailed("Fal returned no image")
    data = []
    for image in result["images"]:
        url = str(image["url"])
        if request.response_format == "b64_json":
            encoded = inline_b64(url) or (fetched or {}).get(url)
            if encoded is None:
                raise FalProtocolError("an image was neither inline nor fetched")
            data.append({"b64_json": encoded, "revised_prompt": None})
        else:
            data.append({"url": url, "revised_prompt": None})
    return {
        "created": created,
        "data": data,
        "size": request.size,
        "output_format": request.output_format,
        "seed": result.get("seed"),
        "has_nsfw_concepts": list(result.get("has_nsfw_concepts") or []),
    }
