"""Pure transforms for image edits: an OpenAI ``images.edit`` multipart form -> ImageRequest.

Why it exists: a form carries every field as text and the images as bytes; the same rules as
for generation apply once the text is typed, plus the edit's own: an image is required and must
decode, a mask must decode and match the image's size. The images travel to Fal as data URIs
(Fal's models accept them), so no storage upload is needed.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from typing import Any

import msgspec
from PIL import Image

from plugins.fal.errors import FalInvalidRequest
from plugins.fal.transforms import ImageRequest, parse_image_request

__all__ = ["parse_edit_request"]

_INTEGERS = ("n", "seed", "num_inference_steps")
_NUMBERS = ("guidance_scale", "strength")
_MAX_PIXELS = 4096 * 4096


def _typed(name: str, text: Any) -> Any:
    """A form field's value as the JSON type the generation rules expect."""
    if not isinstance(text, str):
        return text
    try:
        if name in _INTEGERS:
            return int(text)
        if name in _NUMBERS:
            return float(text)
    except ValueError:
        return text  # left as text: the rules then name the field
    if name == "enable_safety_checker":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


def _loras(fields: Mapping[str, Any]) -> Any:
    """LoRAs as a JSON text field, or flattened by the SDK as ``loras[][path]``/``[scale]``."""
    value = fields.get("loras")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise FalInvalidRequest(
                "'loras' must be a JSON list of {path, scale}", param="loras"
            ) from exc
    paths, scales = fields.get("loras[][path]"), fields.get("loras[][scale]")
    if paths is None:
        return value
    paths = paths if isinstance(paths, list) else [paths]
    scales = scales if isinstance(scales, list) else [scales] if scales is not None else []
    loras: list[dict[str, Any]] = []
    for index, path in enumerate(paths):
        entry: dict[str, Any] = {"path": path}
        if index < len(scales):
            entry["scale"] = _typed("strength", scales[index])
        loras.append(entry)
    return loras


def _decoded(data: bytes, param: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > _MAX_PIXELS:
            raise FalInvalidRequest(f"'{param}' is larger than {_MAX_PIXELS} pixels", param=param)
        image.load()
    except (OSError, Image.DecompressionBombError) as exc:
        raise FalInvalidRequest(f"'{param}' is not a decodable image", param=param) from exc
    return image


def _data_uri(data: bytes, image: Image.Image) -> str:
    kind = Image.MIME.get(image.format or "", "image/png")
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def parse_edit_request(
    fields: Mapping[str, Any], image: bytes | None, mask: bytes | None
) -> ImageRequest:
    """Validate an edit: the form's fields, the image (required) and the optional mask."""
    if not image:
        raise FalInvalidRequest("an edit needs an 'image' file", param="image")
    picture = _decoded(image, "image")
    body = {name: _typed(name, value) for name, value in fields.items() if "[" not in name}
    body["loras"] = _loras(fields)
    if not body.get("size") or body.get("size") == "auto":
        body["size"] = f"{picture.width}x{picture.height}"
    strength = body.pop("strength", None)
    request = parse_image_request(body)
    if strength is not None and (
        isinstance(strength, bool) or not isinstance(strength, int | float) or not 0 < strength <= 1
    ):
        raise FalInvalidRequest(
            "'strength' must be a number above 0 and at most 1", param="strength"
        )
    mask_uri = None
    if mask:
        matte = _decoded(mask, "mask")
        if matte.size != picture.size:
            sizes = f"{matte.width}x{matte.height} vs {picture.width}x{picture.height}"
            raise FalInvalidRequest(f"'mask' and 'image' sizes differ ({sizes})", param="mask")
        mask_uri = _data_uri(mask, matte)
    return msgspec.structs.replace(
        request,
        image=_data_uri(image, picture),
        mask=mask_uri,
        strength=float(strength) if strength is not None else None,
    )
