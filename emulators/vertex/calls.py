"""The record kept of each model call, as the control API's ``stats()["calls"]`` shows it.

Why it exists: the gateway's tests prove that configuration reaches the wire (the safety
settings of a model group, the image config mapped from ``size``, the images of an edit in
order) by reading what the emulator received; the record is taken from the raw body, before
validation, so a request the emulator refuses is recorded as sent too.

One record::

    {"method": "generateContent" | "streamGenerateContent" | "predict",
     "version": "v1beta1", "project": ..., "location": ..., "model": ...,
     "safety_settings": [...as received, with "method" where sent...],
     "image_config": {...} | None, "response_modalities": [...] | None,
     "candidate_count": int | None,
     "images": 2, "mime_types": ["image/png", "image/jpeg"],   # input images, in order
     "parameters": {...} | None,                               # :predict only
     "status": 200, "outcome": "ok" | "blocked:SAFETY" | "finish:NO_IMAGE" | "rai" | "error"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulators.vertex.wire import pick

__all__ = ["summarise"]


def _generate_images(body: Mapping[str, Any]) -> list[str]:
    mime_types: list[str] = []
    for content in body.get("contents") or []:
        for part in pick(content, "parts", "parts", []) or []:
            blob = pick(part, "inlineData", "inline_data") or pick(part, "fileData", "file_data")
            mime = pick(blob, "mimeType", "mime_type")
            if isinstance(mime, str) and mime.startswith("image/"):
                mime_types.append(mime)
    return mime_types


def _predict_images(body: Mapping[str, Any]) -> list[str]:
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        return []
    first = instances[0]
    holders = [pick(first, "personImage", "person_image")]
    holders.extend(pick(first, "productImages", "product_images", []) or [])
    images = [pick(holder, "image", "image") for holder in holders]
    return [str(pick(image, "mimeType", "mime_type", "image/*")) for image in images if image]


def summarise(
    method: str, path: Mapping[str, str], model: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """What the call carried, for the statistics; never fails on a malformed body."""
    config = pick(body, "generationConfig", "generation_config", {}) or {}
    predict = method == "predict"
    mime_types = _predict_images(body) if predict else _generate_images(body)
    return {
        "method": method,
        "version": path.get("version"),
        "project": path.get("project"),
        "location": path.get("location"),
        "model": model,
        "safety_settings": pick(body, "safetySettings", "safety_settings"),
        "image_config": pick(config, "imageConfig", "image_config"),
        "response_modalities": pick(config, "responseModalities", "response_modalities"),
        "candidate_count": pick(config, "candidateCount", "candidate_count"),
        "images": len(mime_types),
        "mime_types": mime_types,
        "parameters": body.get("parameters") if predict else None,
        "status": None,
        "outcome": None,
    }
