"""The OpenAI emulator as seen through the official openai SDK, unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pydantic
import pytest

from emulators.testing import EmulatorHandle

MODEL = "gpt-4o"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
    },
}
SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search_catalog",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
        },
    },
}


@pytest.fixture
def client(openai_em: EmulatorHandle) -> Iterator[openai.OpenAI]:
    """A sync SDK client without retries, so each call is one attempt."""
    with openai.OpenAI(base_url=f"{openai_em.url}/v1", api_key="sk-test", max_retries=0) as c:
        yield c


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_plain_completion_names_emulator_model_and_prompt(client: openai.OpenAI) -> None:
    """A plain chat answer is deterministic and derived from the model and prompt."""
    first = client.chat.completions.create(model=MODEL, messages=_user("Describe a red dress"))
    second = client.chat.completions.create(model=MODEL, messages=_user("Describe a red dress"))
    text = first.choices[0].message.content
    assert text is not None
    assert text.startswith("[openai-emulator gpt-4o] 0 image(s); re: Describe a red dress")
    assert text == second.choices[0].message.content
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens


def test_system_prompt_counts_towards_prompt_tokens(client: openai.OpenAI) -> None:
    """A system message is accepted and adds to the prompt token count."""
    plain = client.chat.completions.create(model=MODEL, messages=_user("hello"))
    system = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "You are a stylist. " * 4}, *_user("hello")],
    )
    assert plain.usage is not None and system.usage is not None
    assert system.usage.prompt_tokens > plain.usage.prompt_tokens


def test_multi_image_vision_counts_images(client: openai.OpenAI, png_b64: str) -> None:
    """Each image_url data URL is counted in the reply and in usage."""
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png_b64}"}}
    content: Any = [{"type": "text", "text": "Compare these looks"}, image, image, image]
    result = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}]
    )
    assert "3 image(s); re: Compare these looks" in (result.choices[0].message.content or "")
    assert result.usage is not None and result.usage.prompt_tokens >= 3 * 258


def test_json_object_mode_returns_json(client: openai.OpenAI) -> None:
    """response_format json_object yields a JSON object as the message content."""
    result = client.chat.completions.create(
        model=MODEL, messages=_user("Tag this outfit"), response_format={"type": "json_object"}
    )
    body = json.loads(result.choices[0].message.content or "")
    assert body["model"] == MODEL


def test_json_schema_output_validates(client: openai.OpenAI) -> None:
    """response_format json_schema yields content valid against that schema."""
    schema = {
        "type": "object",
        "properties": {
            "garment": {"type": "string", "enum": ["dress", "coat", "shirt"]},
            "colours": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "price": {"type": "number", "minimum": 10, "maximum": 500},
            "tags": {"anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}}]},
            "meta": {
                "type": "object",
                "properties": {"in_stock": {"type": "boolean"}},
                "required": ["in_stock"],
                "additionalProperties": False,
            },
        },
        "required": ["garment", "colours", "price", "tags", "meta"],
        "additionalProperties": False,
    }
    result = client.chat.completions.create(
        model=MODEL,
        messages=_user("Describe the product"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "product", "schema": schema, "strict": True},
        },
    )
    jsonschema.validate(json.loads(result.choices[0].message.content or ""), schema)


def test_tools_produce_tool_calls_valid_for_schema(client: openai.OpenAI) -> None:
    """With tools offered, the reply is a tool call whose arguments fit the parameters."""
    result = client.chat.completions.create(
        model=MODEL, messages=_user("Weather in Paris?"), tools=[WEATHER_TOOL]
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    arguments = json.loads(calls[0].function.arguments)
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])


def test_named_tool_choice_selects_that_tool(client: openai.OpenAI) -> None:
    """tool_choice naming a function makes the call use that function."""
    result = client.chat.completions.create(
        model=MODEL,
        messages=_user("Find linen shirts"),
        tools=[WEATHER_TOOL, SEARCH_TOOL],
        tool_choice={"type": "function", "function": {"name": "search_catalog"}},
    )
    calls = result.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["search_catalog"]


def test_tool_result_turn_gets_text_answer(client: openai.OpenAI) -> None:
    """After a tool result is fed back the model answers in text, quoting the result."""
    first = client.chat.completions.create(
        model=MODEL, messages=_user("Weather in Oslo?"), tools=[WEATHER_TOOL]
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    messages: list[Any] = [
        *_user("Weather in Oslo?"),
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny and 21 degrees"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert "sunny and 21 degrees" in (second.choices[0].message.content or "")


def test_stream_assembles_same_text_with_usage(client: openai.OpenAI) -> None:
    """A streamed answer concatenates to the unary answer and ends with a usage chunk."""
    unary = client.chat.completions.create(model=MODEL, messages=_user("Stream me a caption"))
    stream = client.chat.completions.create(
        model=MODEL,
        messages=_user("Stream me a caption"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert len(chunks) > 3
    assert text == unary.choices[0].message.content
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage == unary.usage


def test_stream_tool_call_arguments_assemble(client: openai.OpenAI) -> None:
    """Streamed tool-call argument fragments join into valid JSON for the tool."""
    stream = client.chat.completions.create(
        model=MODEL, messages=_user("Weather in Rome?"), tools=[WEATHER_TOOL], stream=True
    )
    fragments = []
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            fragments.append(call.function.arguments or "" if call.function else "")
    jsonschema.validate(json.loads("".join(fragments)), WEATHER_TOOL["function"]["parameters"])


def test_stop_sequence_cuts_reply(client: openai.OpenAI) -> None:
    """A stop sequence present in the reply truncates it just before the sequence."""
    result = client.chat.completions.create(
        model=MODEL, messages=_user("alpha beta gamma"), stop=["beta"]
    )
    text = result.choices[0].message.content or ""
    assert text.endswith("re: alpha ")
    assert result.choices[0].finish_reason == "stop"


def test_max_tokens_truncates_with_length(client: openai.OpenAI) -> None:
    """A small max_tokens truncates the reply and reports finish_reason length."""
    result = client.chat.completions.create(model=MODEL, messages=_user("hi"), max_tokens=3)
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens == 3
    assert len(result.choices[0].message.content or "") == 12


async def test_async_client_works(openai_em: EmulatorHandle) -> None:
    """AsyncOpenAI gets the same answer as the sync client."""
    async with openai.AsyncOpenAI(
        base_url=f"{openai_em.url}/v1", api_key="sk-test", max_retries=0
    ) as client:
        result = await client.chat.completions.create(model=MODEL, messages=_user("async hi"))
    assert "re: async hi" in (result.choices[0].message.content or "")


def test_models_are_listed(client: openai.OpenAI) -> None:
    """GET /v1/models lists the default models."""
    assert "gpt-4o" in [m.id for m in client.models.list()]


@pytest.mark.parametrize(
    ("spec", "error_type", "status"),
    [
        ("429", openai.RateLimitError, 429),
        ("500", openai.InternalServerError, 500),
        ("503", openai.InternalServerError, 503),
        ("400", openai.BadRequestError, 400),
        ("401", openai.AuthenticationError, 401),
        ("404", openai.NotFoundError, 404),
    ],
)
def test_fault_markers_map_to_sdk_errors(
    client: openai.OpenAI, spec: str, error_type: type[openai.APIStatusError], status: int
) -> None:
    """A fault marker yields the status the SDK maps to its matching exception class."""
    with pytest.raises(error_type) as caught:
        client.chat.completions.create(model=MODEL, messages=_user(f"hi [[fault:{spec}]]"))
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and "type" in caught.value.body


def test_rate_limit_carries_retry_after(client: openai.OpenAI) -> None:
    """A 429 fault with retry-after=2 sends that Retry-After header."""
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=_user("[[fault:429:retry-after=2]]"))
    assert caught.value.response.headers["retry-after"] == "2"


def test_wrong_key_is_rejected_when_keys_are_configured(
    client: openai.OpenAI, openai_em: EmulatorHandle
) -> None:
    """With an allowed-key set, any other key gets AuthenticationError."""
    openai_em.configure(allowed_keys=["sk-only-this-one"])
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=MODEL, messages=_user("hi"))


def test_hang_times_out_client(openai_em: EmulatorHandle) -> None:
    """A hang fault makes a short client timeout raise APITimeoutError."""
    with (
        openai.OpenAI(
            base_url=f"{openai_em.url}/v1", api_key="sk-test", max_retries=0, timeout=0.3
        ) as client,
        pytest.raises(openai.APITimeoutError),
    ):
        client.chat.completions.create(model=MODEL, messages=_user("[[fault:hang]]"))


class Outfit(pydantic.BaseModel):
    """A structured-output target for the SDK's parse helper."""

    top: str
    bottom: str
    colours: list[str]
    formal: bool


def test_parse_helper_returns_model_instance(client: openai.OpenAI) -> None:
    """chat.completions.parse with a pydantic response_format yields a parsed instance."""
    result = client.chat.completions.parse(
        model=MODEL, messages=_user("Suggest an outfit"), response_format=Outfit
    )
    assert isinstance(result.choices[0].message.parsed, Outfit)


def test_sdk_retries_through_counted_fault(openai_em: EmulatorHandle) -> None:
    """With SDK retries on, [[fault:503x2]] costs three attempts and then succeeds."""
    openai_em.reset()
    with openai.OpenAI(base_url=f"{openai_em.url}/v1", api_key="sk-test", max_retries=2) as c:
        result = c.chat.completions.create(model=MODEL, messages=_user("retry [[fault:503x2]]"))
    assert "re: retry" in (result.choices[0].message.content or "")
    assert openai_em.stats()["requests"] == 3
