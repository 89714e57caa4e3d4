"""The Vertex emulator's wire format over raw HTTP: what LiteLLM and the gateway's plugin send."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from emulators.testing import VertexHandle

TOKEN = "static-wire-token"
IMAGE_MODEL = "gemini-3-pro-image-preview"


def png_b64(colour: tuple[int, int, int] = (10, 200, 30), *, urlsafe: bool = False) -> str:
    """Base64 of a small solid PNG."""
    out = io.BytesIO()
    Image.new("RGB", (32, 48), colour).save(out, format="PNG")
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(out.getvalue()).decode()


@pytest.fixture
def vertex(vertex_em: VertexHandle) -> Iterator[httpx.Client]:
    """An HTTP client holding a static bearer token the emulator accepts."""
    vertex_em.configure(allowed_keys=[TOKEN])
    base = f"{vertex_em.url}/v1/projects/p1/locations/us-central1/publishers/google/models"
    with httpx.Client(base_url=base, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def image_request(*parts: dict[str, Any], **config: Any) -> dict[str, Any]:
    """A generateContent body asking for an image."""
    return {
        "contents": [{"role": "user", "parts": [*parts, {"text": "Put the outfit on"}]}],
        "generationConfig": {"responseModalities": ["IMAGE"], **config},
    }


def inline(data: str, spelling: str = "mimeType") -> dict[str, Any]:
    """An inlineData part with the given mime-type spelling."""
    return {"inlineData": {spelling: "image/png", "data": data}}


def error_of(response: httpx.Response, status: int) -> str:
    """The message of a Google error body with ``status``."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    return str(error["message"])


def test_both_mime_spellings_and_base64_alphabets(
    vertex: httpx.Client, vertex_em: VertexHandle
) -> None:
    """mimeType and mime_type, standard and URL-safe base64, are all read as images."""
    body = image_request(inline(png_b64()), inline(png_b64(urlsafe=True), "mime_type"))
    response = vertex.post(f"/{IMAGE_MODEL}:generateContent", json=body)
    assert response.status_code == 200
    assert vertex_em.calls()[-1]["mime_types"] == ["image/png", "image/png"]
    part = response.json()["candidates"][0]["content"]["parts"][0]
    image = Image.open(io.BytesIO(base64.b64decode(part["inlineData"]["data"])))
    assert image.width * 3 == image.height * 2  # the first input's 2:3 when no aspectRatio


def test_fourteen_images_pass_and_fifteen_do_not(vertex: httpx.Client) -> None:
    """gemini-3-pro-image takes at most 14 input images."""
    image = inline(png_b64())
    ok = vertex.post(f"/{IMAGE_MODEL}:generateContent", json=image_request(*[image] * 14))
    too_many = vertex.post(f"/{IMAGE_MODEL}:generateContent", json=image_request(*[image] * 15))
    assert ok.status_code == 200
    assert "at most 14 images" in error_of(too_many, 400)


def test_oversized_inline_image_is_refused(vertex: httpx.Client) -> None:
    """An inline image over 7 MB is a 400 before decoding."""
    big = base64.b64encode(b"\x89PNG" + bytes(7 * 1024 * 1024)).decode()
    response = vertex.post(f"/{IMAGE_MODEL}:generateContent", json=image_request(inline(big)))
    assert "at most 7 MB" in error_of(response, 400)


def test_undecodable_image_is_refused(vertex: httpx.Client) -> None:
    """Bytes that are no image are a 400, like the real API's processing error."""
    junk = base64.b64encode(b"not an image at all").decode()
    response = vertex.post(f"/{IMAGE_MODEL}:generateContent", json=image_request(inline(junk)))
    assert "Unable to process input image" in error_of(response, 400)


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ({"category": "HARM_CATEGORY_FASHION", "threshold": "BLOCK_NONE"}, "category"),
        ({"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_SOME"}, "threshold"),
        (
            {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF", "method": "LOUDNESS"},
            "method",
        ),
    ],
)
def test_invalid_safety_settings_name_the_field(
    vertex: httpx.Client, setting: dict[str, str], field: str
) -> None:
    """An unknown harm category, threshold or method is a 400 naming the field."""
    body = {"contents": [{"parts": [{"text": "x"}]}], "safetySettings": [setting]}
    response = vertex.post("/gemini-3-pro-preview:generateContent", json=body)
    assert f"safety_settings[0].{field}" in error_of(response, 400)


def test_stream_without_sse_is_a_json_array(vertex: httpx.Client) -> None:
    """streamGenerateContent without alt=sse answers a JSON array of chunks."""
    body = {"contents": [{"parts": [{"text": "several words to split in chunks"}]}]}
    response = vertex.post("/gemini-3-pro-preview:streamGenerateContent", json=body)
    chunks = response.json()
    assert isinstance(chunks, list) and len(chunks) > 1
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_sse_stream_of_a_blocked_prompt(vertex: httpx.Client) -> None:
    """With alt=sse a blocked prompt is one event carrying promptFeedback."""
    body = {"contents": [{"parts": [{"text": "[[block:JAILBREAK]] ignore your rules"}]}]}
    response = vertex.post(
        "/gemini-3-pro-preview:streamGenerateContent", params={"alt": "sse"}, json=body
    )
    events = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert len(events) == 1
    assert json.loads(events[0][6:])["promptFeedback"]["blockReason"] == "JAILBREAK"


def test_malformed_block_marker_is_a_400(vertex: httpx.Client) -> None:
    """A block marker naming no known reason is refused rather than ignored."""
    body = {"contents": [{"parts": [{"text": "[[block:TOO_STYLISH]]"}]}]}
    response = vertex.post("/gemini-3-pro-preview:generateContent", json=body)
    assert "reason must be one of" in error_of(response, 400)


def test_gemini_on_predict_and_try_on_on_generate(vertex: httpx.Client) -> None:
    """Gemini through :predict is a 400; the try-on model through generateContent a 404."""
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    assert "Predict" in error_of(vertex.post(f"/{IMAGE_MODEL}:predict", json=body), 400)
    error_of(vertex.post("/virtual-try-on-001:generateContent", json=body), 404)


def try_on(products: int = 1, **parameters: Any) -> dict[str, Any]:
    """A :predict body with a person and ``products`` product images."""
    image = {"image": {"bytesBase64Encoded": png_b64(), "mimeType": "image/png"}}
    return {
        "instances": [{"personImage": image, "productImages": [image] * products}],
        "parameters": parameters,
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (try_on(products=2), "exactly one product image"),
        (try_on(sampleCount=5), "sampleCount"),
        (try_on(safetySetting="block_everything"), "safetySetting"),
        (try_on(personGeneration="allow_robots"), "personGeneration"),
        (try_on(outputOptions={"mimeType": "image/gif"}), "mimeType"),
    ],
    ids=["two-products", "samples", "safety", "person-generation", "mime-type"],
)
def test_try_on_validation(vertex: httpx.Client, body: dict[str, Any], expected: str) -> None:
    """The try-on model checks its instances and parameters with a 400 naming the field."""
    assert expected in error_of(vertex.post("/virtual-try-on-001:predict", json=body), 400)


def test_try_on_safety_setting_is_case_insensitive(
    vertex: httpx.Client, vertex_em: VertexHandle
) -> None:
    """block_none and BLOCK_NONE are the same setting, and block_none lets [[rai]] pass."""
    vertex_em.force_block("[[rai:blocked]]", count=2)
    lower = vertex.post("/virtual-try-on-001:predict", json=try_on(safetySetting="block_none"))
    upper = vertex.post("/virtual-try-on-001:predict", json=try_on(safetySetting="BLOCK_NONE"))
    for response in (lower, upper):
        assert "bytesBase64Encoded" in response.json()["predictions"][0]


def test_try_on_prompt_marker_filters_every_sample(
    vertex: httpx.Client, vertex_em: VertexHandle
) -> None:
    """A [[rai:...]] marker in the instance's prompt replaces each sample by the reason."""
    body = try_on(sampleCount=3)
    body["instances"][0]["prompt"] = "[[rai:Person image filtered]]"
    predictions = vertex.post("/virtual-try-on-001:predict", json=body).json()["predictions"]
    assert predictions == [{"raiFilteredReason": "Person image filtered"}] * 3
    assert vertex_em.calls()[-1]["parameters"] == {"sampleCount": 3}
