"""The Fal plugin's vision transforms: chat messages in, pixel-box answers out."""

from __future__ import annotations

import jsonschema
import pytest

from plugins.fal import FalInvalidRequest
from plugins.fal.vision import (
    FACES_SCHEMA,
    MASKS_SCHEMA,
    faces_answer,
    masks_answer,
    parse_vision_chat,
    vision_input,
)

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def test_json_text_carries_sam3_prompts() -> None:
    """A JSON message text becomes SAM-3's prompt and box prompts."""
    text = '{"prompt": "shirt", "box_prompts": [{"x_min": 1, "y_min": 2, "x_max": 3, "y_max": 4}]}'
    messages = [{"role": "user", "content": [{"type": "text", "text": text}, IMAGE]}]
    body = vision_input(parse_vision_chat(messages, "segment"))
    assert body["prompt"] == "shirt"
    assert body["box_prompts"] == [{"x_min": 1, "y_min": 2, "x_max": 3, "y_max": 4}]


def test_a_chat_without_an_image_is_refused() -> None:
    """Without an image_url part the request names `messages`."""
    with pytest.raises(FalInvalidRequest) as caught:
        parse_vision_chat([{"role": "user", "content": "face"}], "detect")
    assert caught.value.param == "messages"


def test_normalised_boxes_become_pixels_of_the_image() -> None:
    """Moondream's 0..1 boxes and SAM-3's [cx, cy, w, h] boxes become pixel corners."""
    faces = faces_answer(
        {"objects": [{"x_min": 0.1, "y_min": 0.2, "x_max": 0.5, "y_max": 0.6}]}, 200, 100
    )
    assert faces["faces"][0]["box"] == [20, 20, 100, 60]
    jsonschema.validate(faces, FACES_SCHEMA)
    masks = masks_answer(
        {"masks": [{"url": "http://m/0.png"}], "scores": [0.9], "boxes": [[0.5, 0.5, 0.2, 0.4]]},
        200,
        100,
    )
    assert masks["masks"][0]["box"] == [80, 30, 120, 70]
    jsonschema.validate(masks, MASKS_SCHEMA)
