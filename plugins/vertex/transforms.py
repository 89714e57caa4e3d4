"""Pure transforms between the OpenAI images API and Vertex AI's Gemini image models (no I/O).

Why it exists: every rule of the translation is a plain function, testable without a network:
which OpenAI ``size`` becomes which ``imageConfig`` (aspect ratio and image size), what an edit
may carry, how the parts of a multi-image edit are ordered, the URL of a model method, and how
an answer (or a refusal) is read.

Sizes: ``WIDTHxHEIGHT`` maps to the supported aspect ratio within 5 % of W/H (1792x1024 ->
16:9; Fal's presets such as ``landscape_16_9`` too) and to the smallest image size whose long
side holds the larger side (1K = 1024, 2K = 2048, 4K = 4096). ``aspect_ratio`` and
``image_size`` may also be sent as extra fields; a size that maps to no supported ratio, or a
ratio that contradicts the size, is refused.

Multi-image edits (virtual try-on) are sent as one user turn, in this order: the person image,
then each garment image in the order given, then the instruction, prefixed by a sentence naming
the images by position ("Image 1 is the person; images 2 to 3 are garments"), so the model's
references to "the first image" are unambiguous.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from plugins.vertex.errors import VertexContentPolicy, VertexInvalidRequest, VertexProtocolError
from plugins.vertex.options import ModelOptions, model_id

__all__ = [
    "ASPECT_RATIOS",
    "IMAGE_SIZES",
    "MAX_IMAGES",
    "REFUSALS",
    "ImageRequest",
    "InlineImage",
    "b64",
    "decoded_size",
    "generate_content_body",
    "images_of_answer",
    "model_url",
    "openai_images",
    "parse_image_request",
]

ASPECT_RATIOS: Mapping[str, float] = {
    ratio: int(ratio.split(":")[0]) / int(ratio.split(":")[1])
    for ratio in ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
}
IMAGE_SIZES: Mapping[str, int] = {"1K": 1024, "2K": 2048, "4K": 4096}
MAX_IMAGES = 4
_RATIO_TOLERANCE = 0.05
_MIN_SIDE = 64
# Fal's size presets, which the image tasks' Fal deployments accept too.
_PRESETS: Mapping[str, tuple[str, str]] = {
    "square_hd": ("1:1", "1K"),
    "square": ("1:1", "1K"),
    "portrait_4_3": ("3:4", "1K"),
    "portrait_16_9": ("9:16", "1K"),
    "landscape_4_3": ("4:3", "1K"),
    "landscape_16_9": ("16:9", "1K"),
}
# finishReason / blockReason values that mean "refused on content grounds" (google-genai's
# FinishReason and BlockedReason; the image ones are what Gemini image models answer).
REFUSALS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "IMAGE_OTHER",
        "NO_IMAGE",
        "MODEL_ARMOR",
        "JAILBREAK",
        "OTHER",
    }
)


class InlineImage(msgspec.Struct, frozen=True, kw_only=True):
    """An input or output image: its MIME type, base64 payload and decoded size in bytes."""

    mime_type: str
    data: str
    size_bytes: int = 0


class ImageRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One validated image request: a generation, or an edit when ``images`` is not empty."""

    prompt: str
    n: int
    response_format: Literal["url", "b64_json"]
    aspect_ratio: str | None = None
    image_size: str | None = None
    seed: int | None = None
    # Edits: the person (or the image to edit) first, then garments / references in order.
    images: tuple[InlineImage, ...] = ()
    # An edit's mask (white = change), sent after the images with a sentence saying so.
    mask: InlineImage | None = None


def _bad(message: str, param: str) -> VertexInvalidRequest:
    return VertexInvalidRequest(message, param=param)


def _ratio_of(width: int, height: int) -> str | None:
    actual = width / height
    best = min(ASPECT_RATIOS, key=lambda name: abs(ASPECT_RATIOS[name] / actual - 1))
    return best if abs(ASPECT_RATIOS[best] / actual - 1) <= _RATIO_TOLERANCE else None


def _size(value: Any) -> tuple[str | None, str | None]:
    """(aspect ratio, image size) for an OpenAI ``size``; (None, None) for none or "auto"."""
    if value is None or value == "auto":
        return None, None
    if not isinstance(value, str):
        raise _bad("'size' must be a string such as '1024x1024'", "size")
    if value in _PRESETS:
        return _PRESETS[value]
    width_text, sep, height_text = value.partition("x")
    if not sep or not width_text.isdigit() or not height_text.isdigit():
        raise _bad(f"unknown size {value!r}: use WIDTHxHEIGHT, e.g. '1792x1024'", "size")
    width, height = int(width_text), int(height_text)
    if min(width, height) < _MIN_SIDE:
        raise _bad(f"size {value!r}: each side must be at least {_MIN_SIDE} pixels", "size")
    ratio = _ratio_of(width, height)
    if ratio is None:
        supported = ", ".join(ASPECT_RATIOS)
        raise _bad(
            f"size {value!r} has no supported aspect ratio (Vertex takes {supported})", "size"
        )
    long_side = max(width, height)
    image_size = next((name for name, side in IMAGE_SIZES.items() if long_side <= side), None)
    if image_size is None:
        raise _bad(f"size {value!r}: the longer side may be at most 4096 pixels", "size")
    return ratio, image_size


def _choice(body: Mapping[str, Any], name: str, allowed: Sequence[str]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise _bad(f"'{name}' must be one of {', '.join(allowed)} (got {value!r})", name)
    return str(value)


def parse_image_request(
    body: Mapping[str, Any],
    images: Sequence[InlineImage] = (),
    mask: InlineImage | None = None,
) -> ImageRequest:
    """Validate an OpenAI images body (plus ``aspect_ratio``, ``image_size``, ``seed``)."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _bad("'prompt' is required and must be a non-empty string", "prompt")
    n = body.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
        raise _bad(f"'n' must be an integer from 1 to {MAX_IMAGES}", "n")
    response_format: Literal["url", "b64_json"]
    match body.get("response_format") or "b64_json":
        case "url" | "b64_json" as response_format:
            pass
        case _:
            raise _bad("'response_format' must be 'url' or 'b64_json'", "response_format")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise _bad("'seed' must be a non-negative integer", "seed")
    ratio, image_size = _size(body.get("size"))
    explicit_ratio = _choice(body, "aspect_ratio", tuple(ASPECT_RATIOS))
    explicit_size = _choice(body, "image_size", tuple(IMAGE_SIZES))
    if explicit_ratio is not None and ratio is not None and explicit_ratio != ratio:
        raise _bad(
            f"'aspect_ratio' {explicit_ratio} contradicts size {body.get('size')} ({ratio})",
            "aspect_ratio",
        )
    return ImageRequest(
        prompt=prompt,
        n=n,
        response_format=response_format,
        aspect_ratio=explicit_ratio or ratio,
        image_size=explicit_size or image_size,
        seed=seed,
        images=tuple(images),
        mask=mask,
    )


def model_url(api_base: str | None, project: str, location: str, model: str, method: str) -> str:
    """``{base}/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:{method}``; the
    base is Google's regional host unless ``api_base`` is set (`global` has no region)."""
    if api_base:
        base = api_base.rstrip("/")
    elif location == "global":
        base = "https://aiplatform.googleapis.com"
    else:
        base = f"https://{location}-aiplatform.googleapis.com"
    return (
        f"{base}/v1/projects/{project}/locations/{location}"
        f"/publishers/google/models/{model_id(model)}:{method}"
    )


def _roles(count: int) -> str:
    if count == 2:
        return "Image 1 is the person; image 2 is a garment to dress them in."
    return f"Image 1 is the person; images 2 to {count} are garments to dress them in."


def _parts(request: ImageRequest) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": image.mime_type, "data": image.data}}
        for image in request.images
    ]
    text = request.prompt
    if len(request.images) > 1:
        text = f"{_roles(len(request.images))} {text}"
    if request.mask is not None:
        mask = request.mask
        parts.append({"inlineData": {"mimeType": mask.mime_type, "data": mask.data}})
        text = f"The last image is a mask of the first: change only its white area. {text}"
    parts.append({"text": text})
    return parts


def generate_content_body(
    request: ImageRequest, options: ModelOptions, *, index: int = 0
) -> dict[str, Any]:
    """The generateContent body for image ``index`` of ``request`` (one image per call; a
    seed moves by the index so the n images differ)."""
    image_config: dict[str, str] = {}
    if request.aspect_ratio is not None:
        image_config["aspectRatio"] = request.aspect_ratio
    if request.image_size is not None:
        image_config["imageSize"] = request.image_size
    generation: dict[str, Any] = {"responseModalities": ["IMAGE"]}
    if image_config:
        generation["imageConfig"] = image_config
    if request.seed is not None:
        generation["seed"] = request.seed + index
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": _parts(request)}],
        "generationConfig": generation,
    }
    if options.safety_settings:
        body["safetySettings"] = [setting.wire() for setting in options.safety_settings]
    return body


def _refusal(reason: str, detail: str) -> VertexContentPolicy:
    return VertexContentPolicy(
        f"Vertex refused the request on content grounds: {reason}{detail}", reason=reason
    )


def _inline_of(part: Mapping[str, Any]) -> InlineImage | None:
    inline = part.get("inlineData") or part.get("inline_data")
    if not isinstance(inline, Mapping) or not inline.get("data"):
        return None
    mime = inline.get("mimeType") or inline.get("mime_type") or "image/png"
    return InlineImage(mime_type=str(mime), data=str(inline["data"]))


def images_of_answer(body: Any) -> list[InlineImage]:
    """The images of a generateContent answer; a blocked prompt or a candidate that ended for
    a content reason (or without an image) raises VertexContentPolicy naming the reason."""
    if not isinstance(body, Mapping):
        raise VertexProtocolError("the generateContent answer is not a JSON object")
    feedback = body.get("promptFeedback")
    if isinstance(feedback, Mapping) and feedback.get("blockReason"):
        message = feedback.get("blockReasonMessage")
        raise _refusal(str(feedback["blockReason"]), f" ({message})" if message else "")
    candidates = body.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise VertexProtocolError("the generateContent answer has no candidates")
    candidate = candidates[0]
    if not isinstance(candidate, Mapping):
        raise VertexProtocolError("a candidate is not a JSON object")
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    images = [
        image
        for part in (parts if isinstance(parts, list) else [])
        if isinstance(part, Mapping) and (image := _inline_of(part)) is not None
    ]
    reason = str(candidate.get("finishReason") or "")
    if reason in REFUSALS:
        message = candidate.get("finishMessage")
        raise _refusal(reason, f" ({message})" if message else "")
    if not images:
        texts = [
            str(part.get("text"))
            for part in (parts if isinstance(parts, list) else [])
            if isinstance(part, Mapping) and part.get("text")
        ]
        said = f" (the model said: {' '.join(texts)[:200]})" if texts else ""
        raise _refusal("NO_IMAGE", said)
    return images


def openai_images(
    images: Sequence[InlineImage], request: ImageRequest, created: int
) -> dict[str, Any]:
    """The OpenAI images response; ``url`` answers carry data URIs (nothing is stored)."""
    data: list[dict[str, Any]] = []
    for image in images:
        if request.response_format == "b64_json":
            data.append({"b64_json": image.data, "revised_prompt": None})
        else:
            data.append({"url": f"data:{image.mime_type};base64,{image.data}"})
    return {
        "created": created,
        "data": data,
        "aspect_ratio": request.aspect_ratio,
        "image_size": request.image_size,
    }


def decoded_size(data: str) -> int:
    """Bytes a base64 payload decodes to, without decoding it."""
    padding = data.count("=", max(0, len(data) - 2))
    return len(data) * 3 // 4 - padding


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
