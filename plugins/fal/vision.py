"""Pure transforms for Fal's vision models as chat tasks: face detection (Moondream3) and
segmentation (SAM-3), each answering JSON that follows a published JSON Schema.

Why it exists: clients reach these models with the official openai SDK's chat completions, the
image in the last user message and the request in its text: a plain prompt ("face", "shirt"),
or a JSON object with SAM-3's `prompt`, `box_prompts` and `point_prompts` (pixel coordinates).
Fal's normalised boxes become pixel boxes of the image sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from plugins.fal.errors import FalInvalidRequest, FalProtocolError

__all__ = [
    "FACES_SCHEMA",
    "MASKS_SCHEMA",
    "VisionRequest",
    "faces_answer",
    "masks_answer",
    "parse_vision_chat",
    "vision_input",
]

_BOX = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0},
    "minItems": 4,
    "maxItems": 4,
    "description": "[x_min, y_min, x_max, y_max] in pixels of the input image",
}
FACES_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "FaceDetection",
    "type": "object",
    "required": ["width", "height", "faces"],
    "additionalProperties": False,
    "properties": {
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "faces": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["box", "score"],
                "additionalProperties": False,
                "properties": {
                    "box": _BOX,
                    # Moondream3 reports no confidence: null then.
                    "score": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                },
            },
        },
    },
}
MASKS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Segmentation",
    "type": "object",
    "required": ["width", "height", "masks"],
    "additionalProperties": False,
    "properties": {
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "masks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["url", "score", "box"],
                "additionalProperties": False,
                "properties": {
                    "url": {"type": "string", "description": "PNG of the input's size"},
                    "score": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                    "box": _BOX,
                },
            },
        },
    },
}


class VisionRequest(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["detect", "segment"]
    image_url: str
    prompt: str
    box_prompts: tuple[dict[str, float], ...] = ()
    point_prompts: tuple[dict[str, float], ...] = ()
    max_masks: int = 3


def _parts(messages: Sequence[Any]) -> tuple[str, str | None]:
    for message in reversed(messages):
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content, None
        texts, image = [], None
        for part in content or []:
            if not isinstance(part, Mapping):
                continue
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                url = part.get("image_url")
                image = url.get("url") if isinstance(url, Mapping) else url
        return " ".join(texts).strip(), image if isinstance(image, str) else None
    return "", None


def parse_vision_chat(messages: Sequence[Any], kind: Literal["detect", "segment"]) -> VisionRequest:
    """The vision request in a chat: the last user message's image and text."""
    text, image = _parts(messages)
    if not image:
        raise FalInvalidRequest("the last user message needs an image_url part", param="messages")
    options: Mapping[str, Any] = {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise FalInvalidRequest("the message text is not valid JSON", param="messages") from exc
        options = loaded if isinstance(loaded, Mapping) else {}
    prompt = str(options.get("prompt") or (text if not options else "") or "face")
    return VisionRequest(
        kind=kind,
        image_url=image,
        prompt=prompt,
        box_prompts=tuple(options.get("box_prompts") or ()),
        point_prompts=tuple(options.get("point_prompts") or ()),
    )


def vision_input(request: VisionRequest) -> dict[str, Any]:
    if request.kind == "detect":
        return {"image_url": request.image_url, "prompt": request.prompt}
    body: dict[str, Any] = {
        "image_url": request.image_url,
        "prompt": request.prompt,
        "include_scores": True,
        "include_boxes": True,
        "return_multiple_masks": True,
        "max_masks": request.max_masks,
    }
    if request.box_prompts:
        body["box_prompts"] = list(request.box_prompts)
    if request.point_prompts:
        body["point_prompts"] = list(request.point_prompts)
    return body


def _pixels(box: Sequence[float], width: int, height: int) -> list[int]:
    x0, y0, x1, y1 = box
    return [round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height)]


def faces_answer(result: Any, width: int, height: int) -> dict[str, Any]:
    """Moondream3's normalised objects as pixel boxes (FACES_SCHEMA)."""
    try:
        objects = result["objects"]
        faces = [
            {
                "box": _pixels((o["x_min"], o["y_min"], o["x_max"], o["y_max"]), width, height),
                "score": o.get("score"),
            }
            for o in objects
        ]
    except (KeyError, TypeError) as exc:
        raise FalProtocolError("Fal detection result lacks 'objects' boxes") from exc
    return {"width": width, "height": height, "faces": faces}


def masks_answer(result: Any, width: int, height: int) -> dict[str, Any]:
    """SAM-3's masks with pixel boxes (from its [cx, cy, w, h] normalised boxes)."""
    try:
        masks = result["masks"]
        scores = result.get("scores") or [None] * len(masks)
        boxes = result.get("boxes") or [None] * len(masks)
        answer = []
        for mask, score, box in zip(masks, scores, boxes, strict=False):
            pixel = [0, 0, width, height]
            if box is not None:
                cx, cy, w, h = box
                pixel = _pixels((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), width, height)
            answer.append({"url": str(mask["url"]), "score": score, "box": pixel})
    except (KeyError, TypeError, ValueError) as exc:
        raise FalProtocolError("Fal segmentation result lacks 'masks'") from exc
    return {"width": width, "height": height, "masks": answer}
