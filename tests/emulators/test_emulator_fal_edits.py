"""The Fal emulator's image-to-image and inpainting models: real edits of the input image."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from emulators.testing import FalHandle

AUTH = {"authorization": "Key fal-test-key"}


@pytest.fixture
def fal(fal_emulator: FalHandle) -> Iterator[FalHandle]:
    """The Fal emulator with instant jobs, reset after the test."""
    fal_emulator.set_timings(queue_s=0, run_s=0)
    yield fal_emulator
    fal_emulator.reset()


def _data_uri(image: Image.Image) -> str:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _run(fal: FalHandle, app: str, body: dict[str, object]) -> httpx.Response:
    job = httpx.post(f"{fal.url}/{app}", json=body, headers=AUTH).json()
    return httpx.get(job["response_url"], headers=AUTH)


def _first_image(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    url = response.json()["images"][0]["url"]
    return Image.open(io.BytesIO(httpx.get(url).content)).convert("RGB")


def test_image_to_image_keeps_the_input_size(fal: FalHandle) -> None:
    """Without image_size the edited image has the input image's size."""
    source = Image.new("RGB", (96, 64), (200, 10, 10))
    edited = _first_image(
        _run(
            fal,
            "fal-ai/flux-lora/image-to-image",
            {"prompt": "blue", "image_url": _data_uri(source)},
        )
    )
    assert edited.size == (96, 64)
    assert edited.tobytes() != source.tobytes()


def test_inpainting_changes_only_the_masked_area(fal: FalHandle) -> None:
    """Pixels under the black part of the mask stay as they were; the white part is painted."""
    source = Image.new("RGB", (64, 64), (10, 200, 10))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    body = {
        "prompt": "a red sleeve",
        "image_url": _data_uri(source),
        "mask_url": _data_uri(mask),
        "strength": 1.0,
        "output_format": "png",
    }
    edited = _first_image(_run(fal, "fal-ai/flux-lora/inpainting", body))
    assert edited.getpixel((48, 10)) == (10, 200, 10)
    assert edited.getpixel((10, 10)) != (10, 200, 10)


def test_an_undecodable_input_image_is_a_422(fal: FalHandle) -> None:
    """An image_url whose bytes are no image fails the job with a 422 naming image_url."""
    body = {"prompt": "x", "image_url": "data:image/png;base64," + base64.b64encode(b"no").decode()}
    response = _run(fal, "fal-ai/flux-lora/image-to-image", body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "image_url"]


def test_inpainting_without_a_mask_is_a_422(fal: FalHandle) -> None:
    """The inpainting model requires mask_url."""
    source = _data_uri(Image.new("RGB", (8, 8)))
    response = _run(fal, "fal-ai/flux-lora/inpainting", {"prompt": "x", "image_url": source})
    assert response.status_code == 422
    assert ["body", "mask_url"] in [entry["loc"] for entry in response.json()["detail"]]
