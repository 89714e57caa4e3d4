"""Face detection and segmentation as chat tasks through the proxy, with the official openai
SDK, against the Fal emulator: JSON answers valid against their published schemas."""

from __future__ import annotations

import base64
import io
import json

import httpx
import jsonschema
import openai
import pytest
from PIL import Image
from test_proxy_images import fal, image_proxy, sdk

from emulators.testing import FalHandle
from plugins.fal.vision import FACES_SCHEMA, MASKS_SCHEMA

__all__ = ["fal", "image_proxy", "sdk"]  # fixtures shared with the image tests


def _image(size: tuple[int, int]) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, (210, 180, 160)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _ask(sdk: openai.OpenAI, task: str, text: str, size: tuple[int, int]) -> dict[str, object]:
    completion = sdk.chat.completions.create(
        model=task,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": _image(size)}},
                ],
            }
        ],
    )
    answer: dict[str, object] = json.loads(completion.choices[0].message.content or "")
    return answer


def test_face_boxes_are_pixels_of_the_image_and_match_the_schema(
    sdk: openai.OpenAI, fal: FalHandle
) -> None:
    """face-detection answers FACES_SCHEMA JSON whose boxes lie inside the image sent."""
    answer = _ask(sdk, "face-detection", "face", (400, 300))
    jsonschema.validate(answer, FACES_SCHEMA)
    assert (answer["width"], answer["height"]) == (400, 300)
    faces = answer["faces"]
    assert isinstance(faces, list) and faces
    for face in faces:
        x0, y0, x1, y1 = face["box"]
        assert 0 <= x0 < x1 <= 400
        assert 0 <= y0 < y1 <= 300


def test_segmentation_masks_follow_the_box_prompt_and_match_the_schema(
    sdk: openai.OpenAI, fal: FalHandle
) -> None:
    """segmentation with a box prompt answers MASKS_SCHEMA JSON; the mask is the input's size."""
    request = {
        "prompt": "jacket",
        "box_prompts": [{"x_min": 20, "y_min": 10, "x_max": 80, "y_max": 90}],
    }
    answer = _ask(sdk, "segmentation", json.dumps(request), (160, 100))
    jsonschema.validate(answer, MASKS_SCHEMA)
    masks = answer["masks"]
    assert isinstance(masks, list)
    assert masks[0]["box"] == [20, 10, 80, 90]
    mask = Image.open(io.BytesIO(httpx.get(masks[0]["url"]).content))
    assert mask.size == (160, 100)
    assert mask.convert("L").getpixel((50, 50)) == 255


def test_a_message_without_an_image_is_a_400(sdk: openai.OpenAI, fal: FalHandle) -> None:
    """A vision task whose last user message has no image is refused before any Fal call."""
    with pytest.raises(openai.BadRequestError, match="image_url"):
        sdk.chat.completions.create(
            model="face-detection", messages=[{"role": "user", "content": "face"}]
        )
    assert fal.queue_stats()["jobs"] == 0
