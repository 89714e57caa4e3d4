"""Pure transforms for edits and virtual try-on: an OpenAI ``images.edit`` multipart form with
one or more images -> ImageRequest, the limits each model puts on it, and the dedicated try-on
model's `:predict` body and answer (no I/O).

Why it exists: a form carries every field as text and the images as bytes. The rules here run
before any provider call, so a client learns at once that an image is missing, does not decode,
is too large, or that there are more images than the model takes.

The images of a try-on are the person first, then the garments. Gemini takes them all in one
call; the try-on model takes one garment per call (``productImages`` holds one), so a look of
several garments is dressed one garment at a time, each step's output the next step's person,
and only the last step makes the ``n`` samples asked for.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from plugins.vertex.errors import VertexContentPolicy, VertexInvalidRequest, VertexProtocolError
from plugins.vertex.options import ModelOptions, is_try_on
from plugins.vertex.transforms import ImageRequest, InlineImage, b64, parse_image_request

__all__ = [
    "MAX_UPLOAD_MB",
    "ModelLimits",
    "check_for_model",
    "limits_of",
    "parse_edit_request",
    "predict_body",
    "try_on_images",
]

# The largest input any Vertex image model takes (the try-on model: 10 MB).
MAX_UPLOAD_MB = 10.0
_MB = 1024 * 1024
_INTEGERS = ("n", "seed")
_MAX_PIXELS = 8192 * 8192


class ModelLimits:
    """How many input images a model takes and how large each may be."""

    __slots__ = ("max_images", "max_mb", "min_images")

    def __init__(self, *, max_images: int, max_mb: float, min_images: int) -> None:
        self.max_images = max_images
        self.max_mb = max_mb
        self.min_images = min_images


# Gemini 3 Pro Image: at most 14 input images of 7 MB inline. The try-on model: one person and
# (dressed one by one) at most 4 garments, 10 MB each.
_GEMINI = ModelLimits(max_images=14, max_mb=7.0, min_images=1)
_TRY_ON = ModelLimits(max_images=5, max_mb=10.0, min_images=2)


def limits_of(model: str, options: ModelOptions) -> ModelLimits:
    base = _TRY_ON if is_try_on(model) else _GEMINI
    if options.max_image_mb is None:
        return base
    return ModelLimits(
        max_images=base.max_images,
        max_mb=min(base.max_mb, options.max_image_mb),
        min_images=base.min_images,
    )


def _typed(name: str, text: Any) -> Any:
    if isinstance(text, str) and name in _INTEGERS:
        try:
            return int(text)
        except ValueError:
            return text  # left as text: the rules then name the field
    return text


def _param(index: int, count: int) -> str:
    return "image" if count == 1 else f"image[{index}]"


def _inline(data: bytes, param: str) -> InlineImage:
    if len(data) > MAX_UPLOAD_MB * _MB:
        raise VertexInvalidRequest(
            f"'{param}' is {len(data) / _MB:.1f} MB; images may be at most {MAX_UPLOAD_MB:g} MB",
            param=param,
        )
    try:
        with Image.open(io.BytesIO(data)) as picture:
            if picture.width * picture.height > _MAX_PIXELS:
                raise VertexInvalidRequest(f"'{param}' has too many pixels", param=param)
            kind = Image.MIME.get(picture.format or "")
            picture.verify()
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise VertexInvalidRequest(f"'{param}' is not a decodable image", param=param) from exc
    if kind not in ("image/png", "image/jpeg", "image/webp"):
        raise VertexInvalidRequest(
            f"'{param}' must be a PNG, JPEG or WebP image (got {kind or 'an unknown format'})",
            param=param,
        )
    return InlineImage(mime_type=kind, data=b64(data), size_bytes=len(data))


def parse_edit_request(
    fields: Mapping[str, Any], images: Sequence[bytes], mask: bytes | None
) -> ImageRequest:
    """Validate an edit: the form's fields and its images (the person first for a try-on)."""
    if not images or not any(images):
        raise VertexInvalidRequest("an edit needs at least one 'image' file", param="image")
    inline = [_inline(data, _param(i, len(images))) for i, data in enumerate(images)]
    body = {name: _typed(name, value) for name, value in fields.items()}
    return parse_image_request(body, inline, _inline(mask, "mask") if mask else None)


def check_for_model(request: ImageRequest, model: str, options: ModelOptions) -> None:
    """Refuse, before any call, what ``model`` cannot take: too many or too few images, or an
    image above its size limit."""
    if not request.images:
        if is_try_on(model):
            raise VertexInvalidRequest(
                f"{model} only edits: send a person image and garment images", param="image"
            )
        return
    if request.mask is not None and is_try_on(model):
        raise VertexInvalidRequest(f"{model} takes no 'mask'", param="mask")
    limits = limits_of(model, options)
    count = len(request.images)
    if count > limits.max_images:
        raise VertexInvalidRequest(
            f"{model} takes at most {limits.max_images} images; {count} were sent", param="image"
        )
    if count < limits.min_images:
        raise VertexInvalidRequest(
            f"{model} needs a person image and at least one garment image", param="image"
        )
    for index, image in enumerate(request.images):
        if image.size_bytes > limits.max_mb * _MB:
            param = _param(index, count)
            raise VertexInvalidRequest(
                f"'{param}' is {image.size_bytes / _MB:.1f} MB; {model} takes at most "
                f"{limits.max_mb:g} MB per image",
                param=param,
            )


def predict_body(
    person: InlineImage,
    garment: InlineImage,
    *,
    samples: int,
    seed: int | None,
    options: ModelOptions,
) -> dict[str, Any]:
    """The try-on model's `:predict` body for one garment on ``person``."""
    parameters: dict[str, Any] = {"sampleCount": samples}
    watermark = options.add_watermark
    if seed is not None:
        parameters["seed"] = seed
        # A seed is honoured only without the watermark.
        watermark = False
    if watermark is not None:
        parameters["addWatermark"] = watermark
    if options.safety_filter_level is not None:
        parameters["safetySetting"] = options.safety_filter_level
    if options.person_generation is not None:
        parameters["personGeneration"] = options.person_generation
    return {
        "instances": [
            {
                "personImage": {
                    "image": {"bytesBase64Encoded": person.data, "mimeType": person.mime_type}
                },
                "productImages": [
                    {
                        "image": {
                            "bytesBase64Encoded": garment.data,
                            "mimeType": garment.mime_type,
                        }
                    }
                ],
            }
        ],
        "parameters": parameters,
    }


def try_on_images(body: Any) -> list[InlineImage]:
    """The images of a `:predict` answer; when every sample was filtered, VertexContentPolicy
    names the filter's reason (``raiFilteredReason``)."""
    predictions = body.get("predictions") if isinstance(body, Mapping) else None
    if not isinstance(predictions, list):
        raise VertexProtocolError("the :predict answer has no 'predictions' list")
    images: list[InlineImage] = []
    reasons: list[str] = []
    for prediction in predictions:
        if not isinstance(prediction, Mapping):
            continue
        if prediction.get("bytesBase64Encoded"):
            mime = str(prediction.get("mimeType") or "image/png")
            images.append(InlineImage(mime_type=mime, data=str(prediction["bytesBase64Encoded"])))
        elif prediction.get("raiFilteredReason"):
            reasons.append(str(prediction["raiFilteredReason"]))
    if not images:
        reason = reasons[0] if reasons else "NO_IMAGE"
        raise VertexContentPolicy(
            f"Vertex refused the try-on on content grounds: {reason}", reason=reason
        )
    return images
