"""The self-hosted models under LiteLLM's own calls (stock `litellm --config` registers the
handler in `custom_provider_map`): vision chats answer the vision JSON, embeddings answer
vectors, bad input is LiteLLM's 400."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import litellm
import pytest
from image_server import serving
from onnx_vision_data import GROUP_FACES, group_photo, group_photo_jpeg

from plugins.fal.vision import FACES_SCHEMA
from plugins.onnx.litellm_handler import OnnxLiteLLM
from plugins.onnx.provider import OnnxModels
from plugins.onnx.settings import OnnxSettings


@contextmanager
def _registered(handler: OnnxLiteLLM) -> Iterator[OnnxLiteLLM]:
    """`handler` as LiteLLM's `onnx` provider until the block ends."""
    saved = list(litellm.custom_provider_map)
    litellm.custom_provider_map = [{"provider": "onnx", "custom_handler": handler}]
    litellm.utils.custom_llm_setup()
    try:
        yield handler
    finally:
        litellm.custom_provider_map = saved
        litellm.utils.custom_llm_setup()


@pytest.fixture
def handler(onnx_models: Path) -> Iterator[OnnxLiteLLM]:
    """The handler registered as LiteLLM's `onnx` provider, on the built models."""
    with _registered(OnnxLiteLLM(OnnxModels(OnnxSettings(), onnx_models))) as handler:
        yield handler


def _photo() -> str:
    out = io.BytesIO()
    group_photo().convert("RGB").save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def _faces(url: str) -> dict[str, Any]:
    """litellm.acompletion on onnx/blazeface-full-range for the image at `url`, its JSON
    answer checked against FACES_SCHEMA."""
    response = await litellm.acompletion(
        model="onnx/blazeface-full-range",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "face"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
        api_key="unused",
    )
    answer: dict[str, Any] = json.loads(response.choices[0].message.content)
    jsonschema.validate(answer, FACES_SCHEMA)
    return answer


async def test_a_face_detection_chat_answers_the_faces_json(handler: OnnxLiteLLM) -> None:
    """litellm.acompletion on onnx/blazeface-full-range answers FACES_SCHEMA with six faces."""
    answer = await _faces(_photo())
    assert len(answer["faces"]) == GROUP_FACES


async def test_a_jpeg_photo_is_answered_in_its_own_pixels(handler: OnnxLiteLLM) -> None:
    """The photo's JPEG as sent (decoded at reduced scale for the 192 px model) answers six
    faces in the 1280x886 photo's pixels, spread across it."""
    answer = await _faces("data:image/jpeg;base64," + base64.b64encode(group_photo_jpeg()).decode())
    assert (answer["width"], answer["height"]) == (1280, 886)
    assert len(answer["faces"]) == GROUP_FACES
    # Boxes in the reduced decode's pixels (320x222) would all lie in the top-left quarter.
    assert max(face["box"][2] for face in answer["faces"]) > 640


async def test_an_image_url_is_fetched_only_from_an_allow_listed_server(
    onnx_models: Path,
) -> None:
    """An http URL on this machine is LiteLLM's 400 saying it is refused (the gateway must not
    reach inside its network for a client); with `fetch_allow` naming it, it is answered."""
    with serving({"/group.jpg": (group_photo_jpeg(), "image/jpeg")}) as server:
        url = f"{server.url}/group.jpg"
        refusing = OnnxLiteLLM(OnnxModels(OnnxSettings(), onnx_models))
        with _registered(refusing), pytest.raises(litellm.BadRequestError, match="refused"):
            await _faces(url)
        allowing = OnnxSettings(fetch_allow=("127.0.0.1",))
        with _registered(OnnxLiteLLM(OnnxModels(allowing, onnx_models))):
            answer = await _faces(url)
    assert len(answer["faces"]) == GROUP_FACES


async def test_a_chat_without_an_image_is_a_400(handler: OnnxLiteLLM) -> None:
    """A vision chat whose last user message has no image is LiteLLM's BadRequestError."""
    with pytest.raises(litellm.BadRequestError, match="image_url"):
        await litellm.acompletion(
            model="onnx/blazeface-full-range",
            messages=[{"role": "user", "content": "face"}],
            api_key="unused",
        )


async def test_embeddings_through_litellm_are_unit_vectors_with_usage(
    handler: OnnxLiteLLM,
) -> None:
    """litellm.aembedding on onnx/minilm-l6-v2 answers one 384-d vector per text, with tokens."""
    response = await litellm.aembedding(
        model="onnx/minilm-l6-v2", input=["red silk dress", "engine oil filter"], api_key="x"
    )
    vectors = [item["embedding"] for item in response.data]
    assert [len(v) for v in vectors] == [384, 384]
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-4
    assert response.usage.prompt_tokens > 0
