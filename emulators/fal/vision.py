"""The emulated vision models: Moondream3 detection (faces and other objects) and SAM-3 masks.

Why it exists: callers check that boxes fit the image they sent and that masks are PNGs of its
size; the answers are computed from the decoded input (its size, its bytes and the prompt), so
they are deterministic and geometrically consistent, and SAM-3 honours box and point prompts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageDraw

from emulators.fal.render import encode
from emulators.fal.wire import ValidationFailed

__all__ = ["DETECT_MODELS", "SEGMENT_MODELS", "detect", "segment"]

DETECT_MODELS = frozenset({"fal-ai/moondream3-preview/detect"})
SEGMENT_MODELS = frozenset({"fal-ai/sam-3/image"})
Box = tuple[float, float, float, float]


def _required(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationFailed(
            [{"loc": ["body", name], "msg": "Field required", "type": "missing"}]
        )
    return value


def _boxes(seed: bytes, width: int, height: int, count: int) -> list[Box]:
    """``count`` boxes in pixels, inside the image, sized like faces (square-ish)."""
    boxes = []
    for index in range(count):
        a, b, c = seed[index * 3], seed[index * 3 + 1], seed[index * 3 + 2]
        side = max(4.0, min(width, height) * (0.15 + c / 255 * 0.2))
        x = (width - side) * a / 255
        y = (height - side) * b / 255
        boxes.append((x, y, x + side, y + side))
    return boxes


def detect(body: Mapping[str, Any], image: Image.Image, data: bytes) -> dict[str, Any]:
    """Moondream3 /detect: normalised boxes of what ``prompt`` names."""
    prompt = _required(body, "prompt")
    seed = hashlib.sha256(data + prompt.encode()).digest()
    count = 1 + seed[30] % 2
    objects = [
        {
            "x_min": x0 / image.width,
            "y_min": y0 / image.height,
            "x_max": x1 / image.width,
            "y_max": y1 / image.height,
        }
        for x0, y0, x1, y1 in _boxes(seed, image.width, image.height, count)
    ]
    usage = {"input_tokens": 729 + len(prompt), "output_tokens": 4 * count, "ttft_ms": 12.0}
    return {"objects": objects, "finish_reason": "stop", "usage_info": usage}


def _prompt_boxes(body: Mapping[str, Any], image: Image.Image, data: bytes) -> list[Box]:
    boxes = []
    for item in body.get("box_prompts") or []:
        if isinstance(item, Mapping):
            x0, y0 = float(item.get("x_min", 0)), float(item.get("y_min", 0))
            x1, y1 = float(item.get("x_max", image.width)), float(item.get("y_max", image.height))
            boxes.append((max(0.0, x0), max(0.0, y0), min(image.width, x1), min(image.height, y1)))
    radius = max(2.0, min(image.width, image.height) / 8)
    for item in body.get("point_prompts") or []:
        if isinstance(item, Mapping) and item.get("label", 1) == 1:
            x, y = float(item.get("x", 0)), float(item.get("y", 0))
            boxes.append((max(0.0, x - radius), max(0.0, y - radius), x + radius, y + radius))
    if not boxes:
        prompt = str(body.get("prompt") or "wheel")
        seed = hashlib.sha256(data + prompt.encode()).digest()
        boxes = _boxes(seed, image.width, image.height, 1)
    limit = int(body.get("max_masks", 3)) if body.get("return_multiple_masks") else 1
    return boxes[: max(1, limit)]


def segment(
    body: Mapping[str, Any], image: Image.Image, data: bytes
) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """SAM-3 image: one PNG mask of the input's size per object (white = the object)."""
    files: dict[str, tuple[str, bytes]] = {}
    masks, scores, boxes, metadata = [], [], [], []
    for index, (x0, y0, x1, y1) in enumerate(_prompt_boxes(body, image, data)):
        mask = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask).ellipse((x0, y0, x1, y1), fill=255)
        name = f"mask_{index}.png"
        files[name] = ("image/png", encode(mask, "png"))
        masks.append(
            {
                "file_name": name,
                "content_type": "image/png",
                "width": image.width,
                "height": image.height,
            }
        )
        score = round(0.9 - index * 0.05, 3)
        box = [
            ((x0 + x1) / 2) / image.width,
            ((y0 + y1) / 2) / image.height,
            (x1 - x0) / image.width,
            (y1 - y0) / image.height,
        ]
        scores.append(score)
        boxes.append(box)
        metadata.append({"index": index, "score": score, "box": box})
    result: dict[str, Any] = {"masks": masks, "metadata": metadata}
    if body.get("include_scores"):
        result["scores"] = scores
    if body.get("include_boxes"):
        result["boxes"] = boxes
    return result, files
