"""Vertex refusals, safety settings and errors as google-genai in Vertex mode sees them."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from emulators.testing import VertexHandle
from emulators.vertex.safety import FINISH_REASONS, PROMPT_REASONS

PROJECT = "fashion-test"
IMAGE_MODEL = "gemini-3-pro-image-preview"
IMAGE_ONLY = types.GenerateContentConfig(response_modalities=["IMAGE"])


@pytest.fixture
def client(vertex_em: VertexHandle) -> genai.Client:
    """A Vertex-mode client whose service account's token_uri is the emulator."""
    return genai.Client(
        vertexai=True,
        project=PROJECT,
        location="europe-west4",
        credentials=vertex_em.credentials(PROJECT),
        http_options={"base_url": vertex_em.url},
    )


def safety(threshold: str, method: str | None = None) -> list[types.SafetySetting]:
    """The same threshold for sexually explicit content in text and images."""
    return [
        types.SafetySetting(category=category, threshold=threshold, method=method)
        for category in (
            "HARM_CATEGORY_SEXUALLY_EXPLICIT",
            "HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT",
        )
    ]


@pytest.mark.parametrize("reason", sorted(PROMPT_REASONS))
def test_block_marker_sets_prompt_feedback(client: genai.Client, reason: str) -> None:
    """[[block:REASON]] answers with promptFeedback.blockReason REASON and no candidates."""
    result = client.models.generate_content(
        model=IMAGE_MODEL, contents=f"Swimwear shoot [[block:{reason}]]", config=IMAGE_ONLY
    )
    assert result.prompt_feedback is not None
    assert result.prompt_feedback.block_reason == reason
    assert not result.candidates


@pytest.mark.parametrize("reason", sorted(FINISH_REASONS))
def test_finish_marker_sets_finish_reason(client: genai.Client, reason: str) -> None:
    """[[finish:REASON]] answers with one candidate, finishReason REASON and no image."""
    result = client.models.generate_content(
        model=IMAGE_MODEL, contents=f"Lingerie catalogue [[finish:{reason}]]", config=IMAGE_ONLY
    )
    assert result.candidates is not None and len(result.candidates) == 1
    assert result.candidates[0].finish_reason == reason
    assert result.candidates[0].content is None


def test_block_none_lets_a_safety_marker_pass(client: genai.Client) -> None:
    """BLOCK_NONE for the rated category answers normally where the default blocks."""
    prompt = "Beachwear editorial [[block:SAFETY]]"
    blocked = client.models.generate_content(model=IMAGE_MODEL, contents=prompt, config=IMAGE_ONLY)
    passed = client.models.generate_content(
        model=IMAGE_MODEL,
        contents=prompt,
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"], safety_settings=safety("BLOCK_NONE")
        ),
    )
    assert blocked.prompt_feedback is not None and blocked.prompt_feedback.block_reason
    assert passed.prompt_feedback is None
    assert passed.candidates and passed.candidates[0].finish_reason == "STOP"


def test_block_only_high_passes_medium_and_blocks_high(client: genai.Client) -> None:
    """BLOCK_ONLY_HIGH lets a MEDIUM rating through and blocks a HIGH one (image category)."""
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"], safety_settings=safety("BLOCK_ONLY_HIGH", "SEVERITY")
    )
    medium = client.models.generate_content(
        model=IMAGE_MODEL,
        contents="[[finish:IMAGE_SAFETY:IMAGE_SEXUALLY_EXPLICIT:MEDIUM]] swimsuit",
        config=config,
    )
    high = client.models.generate_content(
        model=IMAGE_MODEL, contents="[[finish:IMAGE_SAFETY]] swimsuit", config=config
    )
    assert medium.candidates and medium.candidates[0].finish_reason == "STOP"
    assert high.candidates and high.candidates[0].finish_reason == "IMAGE_SAFETY"


def test_safety_settings_are_recorded_as_sent(
    client: genai.Client, vertex_em: VertexHandle
) -> None:
    """The stats hold each call's safetySettings with method, and its imageConfig."""
    client.models.generate_content(
        model=IMAGE_MODEL,
        contents="A sheer blouse",
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            safety_settings=safety("BLOCK_ONLY_HIGH", "PROBABILITY"),
            image_config=types.ImageConfig(aspect_ratio="4:5", image_size="2K"),
        ),
    )
    call = vertex_em.calls()[-1]
    assert call["project"] == PROJECT and call["location"] == "europe-west4"
    assert call["model"] == IMAGE_MODEL and call["version"] == "v1beta1"
    assert call["safety_settings"] == [
        {"category": c, "threshold": "BLOCK_ONLY_HIGH", "method": "PROBABILITY"}
        for c in ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT")
    ]
    assert call["image_config"] == {"aspectRatio": "4:5", "imageSize": "2K"}
    assert call["outcome"] == "ok"


def test_forced_marker_blocks_the_next_call_only(
    client: genai.Client, vertex_em: VertexHandle
) -> None:
    """A marker forced through the control API refuses the next call, then expires."""
    vertex_em.force_block("[[block:PROHIBITED_CONTENT]]", count=1)
    first = client.models.generate_content(model=IMAGE_MODEL, contents="A coat", config=IMAGE_ONLY)
    second = client.models.generate_content(model=IMAGE_MODEL, contents="A coat", config=IMAGE_ONLY)
    assert first.prompt_feedback is not None
    assert first.prompt_feedback.block_reason == "PROHIBITED_CONTENT"
    assert second.prompt_feedback is None


@pytest.mark.parametrize(
    ("spec", "kind", "status"),
    [
        ("429", errors.ClientError, "RESOURCE_EXHAUSTED"),
        ("503", errors.ServerError, "UNAVAILABLE"),
        ("400", errors.ClientError, "INVALID_ARGUMENT"),
        ("403", errors.ClientError, "PERMISSION_DENIED"),
        ("401", errors.ClientError, "UNAUTHENTICATED"),
    ],
)
def test_injected_faults_map_to_sdk_errors(
    client: genai.Client,
    vertex_em: VertexHandle,
    spec: str,
    kind: type[errors.APIError],
    status: str,
) -> None:
    """Faults from the control API reach the SDK as its error class with Google's status."""
    vertex_em.set_fault(spec, count=1)
    with pytest.raises(kind) as caught:
        client.models.generate_content(model=IMAGE_MODEL, contents="x", config=IMAGE_ONLY)
    assert caught.value.code == int(spec) and caught.value.status == status


def test_unknown_model_is_not_found(client: genai.Client) -> None:
    """A model Vertex does not publish is a 404 NOT_FOUND."""
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="imagen-99", contents="x")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"


def test_other_project_is_permission_denied(client: genai.Client, vertex_em: VertexHandle) -> None:
    """With allowed_projects set, a call for another project is a 403 PERMISSION_DENIED."""
    vertex_em.configure_vertex(allowed_projects=["someone-else"])
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=IMAGE_MODEL, contents="x", config=IMAGE_ONLY)
    assert caught.value.code == 403 and caught.value.status == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    "config",
    [
        types.GenerateContentConfig(
            response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="7:3")
        ),
        types.GenerateContentConfig(
            response_modalities=["IMAGE"], image_config=types.ImageConfig(image_size="8K")
        ),
        types.GenerateContentConfig(response_modalities=["IMAGE"], candidate_count=2),
    ],
    ids=["aspect-ratio", "image-size", "candidate-count"],
)
def test_invalid_image_requests_are_invalid_argument(
    client: genai.Client, config: types.GenerateContentConfig
) -> None:
    """An unsupported aspect ratio, image size or candidate count is a 400 INVALID_ARGUMENT."""
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=IMAGE_MODEL, contents="x", config=config)
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
