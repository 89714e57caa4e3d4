"""The Gemini emulator as seen through the official google-genai SDK, unchanged."""

from __future__ import annotations

import json

import google.oauth2.credentials
import httpx
import jsonschema
import pydantic
import pytest
from google import genai
from google.genai import errors, types

from emulators.testing import EmulatorHandle

MODEL = "gemini-2.5-flash"


class Product(pydantic.BaseModel):
    """A structured-output target with nested and enumerated fields."""

    name: str
    category: str = pydantic.Field(json_schema_extra={"enum": ["dress", "coat"]})
    sizes: list[str]
    price: float
    on_sale: bool


@pytest.fixture
def client(gemini_em: EmulatorHandle) -> genai.Client:
    """A Google AI (API key) client pointed at the emulator."""
    return genai.Client(api_key="AIza-test", http_options={"base_url": gemini_em.url})


def test_plain_generate_content(client: genai.Client) -> None:
    """generate_content returns deterministic text and usage metadata."""
    result = client.models.generate_content(model=MODEL, contents="Describe a silk scarf")
    assert result.text is not None
    assert result.text.startswith(
        "[gemini-emulator gemini-2.5-flash] 0 image(s); re: Describe a silk scarf"
    )
    assert result.candidates is not None and result.candidates[0].finish_reason == "STOP"
    usage = result.usage_metadata
    assert usage is not None and usage.total_token_count == (
        (usage.prompt_token_count or 0) + (usage.candidates_token_count or 0)
    )


def test_system_instruction_counts_towards_prompt(client: genai.Client) -> None:
    """system_instruction is accepted and adds to the prompt token count."""
    plain = client.models.generate_content(model=MODEL, contents="hello")
    system = client.models.generate_content(
        model=MODEL,
        contents="hello",
        config=types.GenerateContentConfig(system_instruction="You are a stylist. " * 4),
    )
    assert plain.usage_metadata is not None and system.usage_metadata is not None
    assert (system.usage_metadata.prompt_token_count or 0) > (
        plain.usage_metadata.prompt_token_count or 0
    )


def test_inline_images_are_counted(client: genai.Client, png_bytes: bytes) -> None:
    """Inline image parts are counted in the reply."""
    image = types.Part.from_bytes(data=png_bytes, mime_type="image/png")
    result = client.models.generate_content(
        model=MODEL, contents=[image, image, "Rate these outfits"]
    )
    assert "2 image(s); re: Rate these outfits" in (result.text or "")


def test_json_response_schema_validates(client: genai.Client) -> None:
    """response_mime_type JSON with a response_schema yields valid, parsed output."""
    result = client.models.generate_content(
        model=MODEL,
        contents="Describe the product",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Product
        ),
    )
    jsonschema.validate(json.loads(result.text or ""), Product.model_json_schema())
    assert isinstance(result.parsed, Product)


def test_function_calling_returns_function_call(client: genai.Client) -> None:
    """Declared functions produce a functionCall part with arguments fitting the schema."""
    parameters = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    }
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_forecast", description="Forecast", parameters_json_schema=parameters
            )
        ]
    )
    result = client.models.generate_content(
        model=MODEL,
        contents="Weather in Milan?",
        config=types.GenerateContentConfig(
            tools=[tool],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )
    calls = result.function_calls or []
    assert [c.name for c in calls] == ["get_forecast"]
    jsonschema.validate(calls[0].args, parameters)


def test_function_response_turn_gets_text(client: genai.Client) -> None:
    """A functionResponse fed back yields a text answer quoting it."""
    contents = [
        types.Content(role="user", parts=[types.Part.from_text(text="Weather in Milan?")]),
        types.Content(
            role="model",
            parts=[types.Part.from_function_call(name="get_forecast", args={"city": "Milan"})],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(name="get_forecast", response={"sky": "clear"})
            ],
        ),
    ]
    result = client.models.generate_content(model=MODEL, contents=contents)
    assert "clear" in (result.text or "")


def test_stream_assembles_same_text(client: genai.Client) -> None:
    """generate_content_stream chunks concatenate to the unary answer."""
    unary = client.models.generate_content(model=MODEL, contents="Stream a caption")
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Stream a caption"))
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == unary.text
    assert chunks[-1].usage_metadata == unary.usage_metadata


def test_safety_settings_are_accepted(client: genai.Client) -> None:
    """Valid safety settings do not change the answer."""
    settings = [
        types.SafetySetting(
            category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
            threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
        ),
        types.SafetySetting(
            category=types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT,
            threshold=types.HarmBlockThreshold.OFF,
        ),
    ]
    result = client.models.generate_content(
        model=MODEL,
        contents="safe prompt",
        config=types.GenerateContentConfig(safety_settings=settings),
    )
    assert "re: safe prompt" in (result.text or "")


def test_max_output_tokens_truncates(client: genai.Client) -> None:
    """max_output_tokens truncates with finish reason MAX_TOKENS."""
    result = client.models.generate_content(
        model=MODEL, contents="hi", config=types.GenerateContentConfig(max_output_tokens=2)
    )
    assert result.candidates is not None
    assert result.candidates[0].finish_reason == "MAX_TOKENS"


@pytest.mark.parametrize(
    ("spec", "error_type", "code", "status"),
    [
        ("400", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("401", errors.ClientError, 401, "UNAUTHENTICATED"),
        ("404", errors.ClientError, 404, "NOT_FOUND"),
        ("429", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("500", errors.ServerError, 500, "INTERNAL"),
        ("503", errors.ServerError, 503, "UNAVAILABLE"),
    ],
)
def test_fault_markers_map_to_sdk_errors(
    client: genai.Client, spec: str, error_type: type[errors.APIError], code: int, status: str
) -> None:
    """A fault marker yields Gemini's error shape, mapped by the SDK to its error class."""
    with pytest.raises(error_type) as caught:
        client.models.generate_content(model=MODEL, contents=f"[[fault:{spec}]]")
    assert caught.value.code == code
    assert caught.value.status == status


def test_key_query_parameter_authenticates(gemini_em: EmulatorHandle) -> None:
    """?key= is accepted in place of the x-goog-api-key header; no key is 401."""
    url = f"{gemini_em.url}/v1beta/models/{MODEL}:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert httpx.post(url, params={"key": "AIza-test"}, json=body).status_code == 200
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"


def test_sse_stream_over_raw_http(gemini_em: EmulatorHandle) -> None:
    """streamGenerateContent?alt=sse sends data lines of GenerateContentResponse objects."""
    url = f"{gemini_em.url}/v1/models/{MODEL}:streamGenerateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hello stream"}]}]}
    response = httpx.post(url, params={"alt": "sse", "key": "k"}, json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"


def test_vertex_path_with_bearer_token(gemini_em: EmulatorHandle) -> None:
    """The Vertex AI publisher-model path answers a Bearer-authenticated request."""
    url = (
        f"{gemini_em.url}/v1/projects/p1/locations/us-central1/publishers/google/models/"
        f"{MODEL}:generateContent"
    )
    body = {"contents": [{"role": "user", "parts": [{"text": "vertex hi"}]}]}
    response = httpx.post(url, headers={"authorization": "Bearer ya29.token"}, json=body)
    assert response.status_code == 200
    assert "re: vertex hi" in response.json()["candidates"][0]["content"]["parts"][0]["text"]


def test_vertex_mode_sdk_with_credentials(gemini_em: EmulatorHandle) -> None:
    """google-genai in Vertex AI mode, with an OAuth token, reaches the publisher-model path."""
    credentials = google.oauth2.credentials.Credentials(token="ya29.test-token")
    client = genai.Client(
        vertexai=True,
        project="p1",
        location="us-central1",
        credentials=credentials,
        http_options={"base_url": gemini_em.url},
    )
    result = client.models.generate_content(model=MODEL, contents="vertex sdk hello")
    assert "re: vertex sdk hello" in (result.text or "")
    paths = gemini_em.stats()["by_path"]
    assert any("/projects/p1/locations/us-central1/publishers/google/" in p for p in paths)


def test_image_modality_returns_png_part(client: genai.Client) -> None:
    """response_modalities with IMAGE adds a valid, prompt-dependent inline PNG."""
    config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])
    first = client.models.generate_content(model=MODEL, contents="a red gown", config=config)
    other = client.models.generate_content(model=MODEL, contents="a blue coat", config=config)

    def png(result: types.GenerateContentResponse) -> bytes:
        parts = result.candidates[0].content.parts if result.candidates else None
        blobs = [p.inline_data.data for p in parts or [] if p.inline_data and p.inline_data.data]
        assert len(blobs) == 1
        return blobs[0]

    assert png(first).startswith(b"\x89PNG\r\n\x1a\n")
    assert png(first) != png(other)


def test_unversioned_models_path_is_served(gemini_em: EmulatorHandle) -> None:
    """/models/{model}:generateContent without a version prefix answers like /v1beta."""
    body = {"contents": [{"role": "user", "parts": [{"text": "no version"}]}]}
    response = httpx.post(
        f"{gemini_em.url}/models/{MODEL}:generateContent",
        headers={"x-goog-api-key": "k"},
        json=body,
    )
    assert response.status_code == 200
    assert "re: no version" in response.json()["candidates"][0]["content"]["parts"][0]["text"]
