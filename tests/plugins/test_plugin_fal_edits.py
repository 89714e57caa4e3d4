"""The Fal plugin's edit transforms: form fields and images into an ImageRequest."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from plugins.fal import FalInvalidRequest
from plugins.fal.edits import parse_edit_request
from plugins.fal.transforms import flux_input, submit_url


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(out, format="PNG")
    return out.getvalue()


def test_form_text_is_typed_and_flattened_loras_are_regrouped() -> None:
    """n and seed arrive as text; `loras[][path]` / `loras[][scale]` pairs become LoRAs."""
    fields = {
        "prompt": "shorter sleeves",
        "n": "2",
        "seed": "4",
        "loras[][path]": ["https://a/one", "https://a/two"],
        "loras[][scale]": ["0.5", "1.5"],
    }
    request = parse_edit_request(fields, _png((128, 96)), None)
    assert (request.n, request.seed) == (2, 4)
    assert [(lora.path, lora.scale) for lora in request.loras] == [
        ("https://a/one", 0.5),
        ("https://a/two", 1.5),
    ]
    assert request.size == "128x96"


def test_loras_may_come_as_one_json_field() -> None:
    """A `loras` field holding JSON text is read as the list it encodes."""
    loras = json.dumps([{"path": "https://a/one", "scale": 0.3}])
    request = parse_edit_request({"prompt": "x", "loras": loras}, _png((64, 64)), None)
    assert request.loras[0].scale == 0.3


def test_a_mask_selects_inpainting_and_travels_inline() -> None:
    """With a mask the request goes to the inpainting endpoint with image and mask as data URIs."""
    request = parse_edit_request({"prompt": "x"}, _png((64, 64)), _png((64, 64)))
    body = flux_input(request)
    assert body["image_url"].startswith("data:image/png;base64,")
    assert body["mask_url"].startswith("data:image/png;base64,")
    assert submit_url("http://fal", "fal/fal-ai/flux-lora", request).endswith("/inpainting")
    plain = parse_edit_request({"prompt": "x"}, _png((64, 64)), None)
    assert submit_url("http://fal", "fal/fal-ai/flux-lora", plain).endswith("/image-to-image")


@pytest.mark.parametrize(
    ("image", "mask", "fields", "param"),
    [
        (None, None, {}, "image"),
        (b"not an image", None, {}, "image"),
        (_png((64, 64)), b"garbage", {}, "mask"),
        (_png((64, 64)), _png((32, 64)), {}, "mask"),
        (_png((64, 64)), None, {"strength": "2"}, "strength"),
        (_png((64, 64)), None, {"loras": "[not json"}, "loras"),
    ],
)
def test_bad_edits_name_their_parameter(
    image: bytes | None, mask: bytes | None, fields: dict[str, str], param: str
) -> None:
    """A missing or undecodable image, a mismatched mask or a bad field is a 400 naming it."""
    with pytest.raises(FalInvalidRequest) as caught:
        parse_edit_request({"prompt": "x", **fields}, image, mask)
    assert caught.value.param == param
