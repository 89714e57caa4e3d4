"""Fal's response shapes: generated images, queue status objects, results and error bodies.

Why it exists: fal-client parses these shapes field by field (it reads ``logs`` unguarded and
``queue_position`` on IN_QUEUE), so they are built by pure functions in one place, and the
images are real, decodable files whose pixels follow from prompt, seed, LoRAs and index.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from typing import Any

from PIL import Image, ImageDraw
from starlette.responses import JSONResponse

from emulators.fal.wire import FluxInput

__all__ = [
    "bands",
    "encode",
    "error_response",
    "image_digest",
    "log_entry",
    "render_edit",
    "render_image",
    "result_body",
    "status_body",
    "validation_response",
]

_BANDS = 6
_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}
# Fal's infrastructure error types by status, sent in the body and in X-Fal-Error-Type.
_ERROR_TYPES = {
    500: "internal_error",
    502: "runner_connection_error",
    503: "runner_disconnected",
    504: "request_timeout",
}


def image_digest(spec: FluxInput, seed: int, index: int) -> bytes:
    """What one output image is a function of; two LoRA sets give two digests."""
    key: list[object] = [spec.prompt, seed, index, [[lora.path, lora.scale] for lora in spec.loras]]
    for source in (spec.image_url, spec.mask_url):
        if source is not None:
            key.append(hashlib.sha256(source.encode()).hexdigest())
    return hashlib.sha256(json.dumps(key).encode()).digest()


def bands(digest: bytes, width: int, height: int) -> Image.Image:
    """Horizontal bands coloured by ``digest``: what the emulated model "paints"."""
    image = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    for band in range(_BANDS):
        colour = (digest[band * 3], digest[band * 3 + 1], digest[band * 3 + 2])
        top = band * height // _BANDS
        draw.rectangle((0, top, width, (band + 1) * height // _BANDS), fill=colour)
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, format="PNG", compress_level=1)
    else:
        image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


def render_image(digest: bytes, width: int, height: int, fmt: str, *, black: bool) -> bytes:
    """A real image (black when the NSFW filter hid it, as Fal does)."""
    if black:
        return encode(Image.new("RGB", (width, height), (0, 0, 0)), fmt)
    return encode(bands(digest, width, height), fmt)


def render_edit(
    digest: bytes,
    source: Image.Image,
    mask: Image.Image | None,
    *,
    strength: float,
    size: tuple[int, int],
    fmt: str,
) -> bytes:
    """Image-to-image: the source blended towards the painted bands by ``strength``.
    Inpainting: the bands only where the mask is white; elsewhere the source is kept as is."""
    base = source.convert("RGB").resize(size)
    painted = Image.blend(base, bands(digest, *size), strength)
    if mask is not None:
        painted = Image.composite(painted, base, mask.convert("L").resize(size))
    return encode(painted, fmt)


def content_type(fmt: str) -> str:
    return _CONTENT_TYPES[fmt]


def log_entry(message: str, when: float, level: str = "INFO") -> dict[str, Any]:
    stamp = datetime.fromtimestamp(when, UTC).isoformat()
    return {"message": message, "level": level, "source": "USER", "timestamp": stamp}


def status_body(
    state: str,
    *,
    position: int,
    logs: list[dict[str, Any]] | None,
    urls: dict[str, str],
    inference_s: float | None,
    error: str | None = None,
    error_type: str | None = None,
) -> dict[str, Any]:
    """One status object; ``logs`` is always present (null when not asked for)."""
    body: dict[str, Any] = {"status": state, "request_id": urls["request_id"], "logs": logs}
    body["response_url"] = urls["response_url"]
    body["status_url"] = urls["status_url"]
    body["cancel_url"] = urls["cancel_url"]
    if state == "IN_QUEUE":
        body["queue_position"] = position
    if state == "COMPLETED":
        body["metrics"] = {"inference_time": inference_s}
        if error is not None:
            body["error"] = error
            body["error_type"] = error_type
    return body


def result_body(
    spec: FluxInput, seed: int, images: list[dict[str, Any]], nsfw: list[bool], inference_s: float
) -> dict[str, Any]:
    return {
        "images": images,
        "timings": {"inference": inference_s},
        "seed": seed,
        "has_nsfw_concepts": nsfw,
        "prompt": spec.prompt,
    }


def error_response(status: int, message: str, *, request_id: str | None = None) -> JSONResponse:
    """An infrastructure (or auth, rate-limit) error in Fal's ``{"detail", "error_type"}`` shape."""
    body: dict[str, Any] = {"detail": message}
    headers: dict[str, str] = {}
    status = 503 if status == 529 else status
    if (error_type := _ERROR_TYPES.get(status)) is not None:
        body["error_type"] = error_type
        headers["x-fal-error-type"] = error_type
    if request_id is not None:
        # Marks the error as the app's, not the ingress's: fal-client does not retry those.
        headers["x-fal-request-id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers)


def validation_response(detail: list[dict[str, Any]]) -> JSONResponse:
    """Fal's model-input error: 422 with a list of pydantic-style entries."""
    return JSONResponse({"detail": detail}, status_code=422, headers={"x-fal-retryable": "false"})
