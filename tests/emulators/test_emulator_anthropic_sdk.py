"""The Anthropic emulator as seen through the official anthropic SDK, unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import jsonschema
import pytest

from emulators.testing import EmulatorHandle

MODEL = "claude-sonnet-4"
LOOKUP_TOOL: dict[str, Any] = {
    "name": "lookup_sku",
    "description": "Find a product by SKU",
    "input_schema": {
        "type": "object",
        "properties": {
            "sku": {"type": "string"},
            "sizes": {"type": "array", "items": {"type": "string", "enum": ["S", "M", "L"]}},
        },
        "required": ["sku", "sizes"],
    },
}


@pytest.fixture
def client(anthropic_em: EmulatorHandle) -> Iterator[anthropic.Anthropic]:
    """A sync SDK client without retries, so each call is one attempt."""
    with anthropic.Anthropic(base_url=anthropic_em.url, api_key="sk-ant-test", max_retries=0) as c:
        yield c


def _user(content: Any) -> list[Any]:
    return [{"role": "user", "content": content}]


def _image(png_b64: str) -> dict[str, Any]:
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": png_b64},
    }


def test_plain_message_names_emulator_model_and_prompt(client: anthropic.Anthropic) -> None:
    """A plain message answer is one text block derived from the model and prompt."""
    result = client.messages.create(
        model=MODEL, max_tokens=200, messages=_user("Describe a linen suit")
    )
    assert result.stop_reason == "end_turn"
    assert result.content[0].type == "text"
    assert result.content[0].text.startswith(
        "[anthropic-emulator claude-sonnet-4] 0 image(s); re: Describe a linen suit"
    )
    assert result.usage.output_tokens > 0


def test_system_prompt_counts_towards_input_tokens(client: anthropic.Anthropic) -> None:
    """The system field is accepted and adds to input_tokens."""
    plain = client.messages.create(model=MODEL, max_tokens=200, messages=_user("hello"))
    system = client.messages.create(
        model=MODEL, max_tokens=200, system="You are a stylist. " * 4, messages=_user("hello")
    )
    assert system.usage.input_tokens > plain.usage.input_tokens


def test_multi_image_vision_counts_images(client: anthropic.Anthropic, png_b64: str) -> None:
    """Each base64 image block is counted in the reply text."""
    content = [_image(png_b64), _image(png_b64), {"type": "text", "text": "Which fits best?"}]
    result = client.messages.create(model=MODEL, max_tokens=200, messages=_user(content))
    block = result.content[0]
    assert block.type == "text" and "2 image(s); re: Which fits best?" in block.text


def test_tools_produce_tool_use_block(client: anthropic.Anthropic) -> None:
    """With tools offered the reply is a tool_use block whose input fits the schema."""
    result = client.messages.create(
        model=MODEL, max_tokens=200, messages=_user("Find SKU 42"), tools=[LOOKUP_TOOL]
    )
    assert result.stop_reason == "tool_use"
    block = result.content[0]
    assert block.type == "tool_use" and block.name == "lookup_sku"
    assert block.id.startswith("toolu_")
    jsonschema.validate(block.input, LOOKUP_TOOL["input_schema"])


def test_tool_result_turn_gets_text_answer(client: anthropic.Anthropic) -> None:
    """Feeding a tool_result back yields a text answer quoting the result."""
    first = client.messages.create(
        model=MODEL, max_tokens=200, messages=_user("Find SKU 7"), tools=[LOOKUP_TOOL]
    )
    tool_use = first.content[0]
    assert tool_use.type == "tool_use"
    messages: list[Any] = [
        *_user("Find SKU 7"),
        {"role": "assistant", "content": [tool_use.model_dump(exclude_none=True)]},
        *_user([{"type": "tool_result", "tool_use_id": tool_use.id, "content": "in stock: 3"}]),
    ]
    second = client.messages.create(
        model=MODEL, max_tokens=200, messages=messages, tools=[LOOKUP_TOOL]
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and "in stock: 3" in second.content[0].text


def test_helper_stream_text_and_final_message(client: anthropic.Anthropic) -> None:
    """messages.stream yields text deltas that assemble into the final message."""
    unary = client.messages.create(model=MODEL, max_tokens=200, messages=_user("stream this"))
    with client.messages.stream(
        model=MODEL, max_tokens=200, messages=_user("stream this")
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == final.content[0].text == unary.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == unary.usage.output_tokens


def test_raw_stream_event_order(client: anthropic.Anthropic) -> None:
    """stream=True yields the documented event sequence from message_start to message_stop."""
    events = list(
        client.messages.create(model=MODEL, max_tokens=200, messages=_user("raw"), stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.index("content_block_start") < kinds.index("content_block_delta")
    assert kinds.index("content_block_stop") > max(
        i for i, k in enumerate(kinds) if k == "content_block_delta"
    )


def test_stream_tool_use_input_assembles(client: anthropic.Anthropic) -> None:
    """A streamed tool_use block's partial JSON assembles into valid input."""
    with client.messages.stream(
        model=MODEL, max_tokens=200, messages=_user("SKU 9"), tools=[LOOKUP_TOOL]
    ) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    jsonschema.validate(block.input, LOOKUP_TOOL["input_schema"])


def test_stop_sequence_reported(client: anthropic.Anthropic) -> None:
    """A matching stop sequence cuts the text and is reported with stop_reason."""
    result = client.messages.create(
        model=MODEL, max_tokens=200, messages=_user("red green blue"), stop_sequences=["green"]
    )
    assert result.stop_reason == "stop_sequence"
    assert result.stop_sequence == "green"
    assert result.content[0].type == "text" and result.content[0].text.endswith("re: red ")


def test_max_tokens_truncates(client: anthropic.Anthropic) -> None:
    """A small max_tokens truncates the text with stop_reason max_tokens."""
    result = client.messages.create(model=MODEL, max_tokens=2, messages=_user("hi"))
    assert result.stop_reason == "max_tokens"
    assert result.usage.output_tokens == 2


@pytest.mark.parametrize(
    ("spec", "error_type", "status", "kind"),
    [
        ("429", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("500", anthropic.InternalServerError, 500, "api_error"),
        ("401", anthropic.AuthenticationError, 401, "authentication_error"),
        ("404", anthropic.NotFoundError, 404, "not_found_error"),
        ("529", anthropic.OverloadedError, 529, "overloaded_error"),
        ("503", anthropic.OverloadedError, 529, "overloaded_error"),
    ],
)
def test_fault_markers_map_to_sdk_errors(
    client: anthropic.Anthropic,
    spec: str,
    error_type: type[anthropic.APIStatusError],
    status: int,
    kind: str,
) -> None:
    """A fault marker yields Anthropic's status and error type, mapped by the SDK."""
    with pytest.raises(error_type) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=_user(f"[[fault:{spec}]]"))
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": kind, "message": caught.value.body["error"]["message"]},
    }


def test_missing_api_key_is_authentication_error(anthropic_em: EmulatorHandle) -> None:
    """A request without x-api-key gets 401 authentication_error."""
    response = httpx.post(
        f"{anthropic_em.url}/v1/messages",
        headers={"anthropic-version": "2023-06-01"},
        json={"model": MODEL, "max_tokens": 5, "messages": _user("hi")},
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_missing_version_header_is_bad_request(anthropic_em: EmulatorHandle) -> None:
    """A request without anthropic-version gets 400 invalid_request_error."""
    response = httpx.post(
        f"{anthropic_em.url}/v1/messages",
        headers={"x-api-key": "sk-ant-test"},
        json={"model": MODEL, "max_tokens": 5, "messages": _user("hi")},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_models_are_listed(client: anthropic.Anthropic) -> None:
    """GET /v1/models lists the default Claude models through the SDK's pager."""
    assert "claude-sonnet-4-5" in [m.id for m in client.models.list()]


def test_tool_forced_json_output(client: anthropic.Anthropic) -> None:
    """tool_choice forcing one tool yields that tool's input as schema-valid JSON."""
    record = {
        "name": "record_tags",
        "input_schema": {
            "type": "object",
            "properties": {
                "style": {"type": "string", "enum": ["boho", "minimal", "street"]},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["style", "tags"],
        },
    }
    result = client.messages.create(
        model=MODEL,
        max_tokens=200,
        messages=_user("Tag this look"),
        tools=[LOOKUP_TOOL, record],
        tool_choice={"type": "tool", "name": "record_tags"},
    )
    block = result.content[0]
    assert block.type == "tool_use" and block.name == "record_tags"
    jsonschema.validate(block.input, record["input_schema"])


def test_structured_output_format_returns_an_instance_of_the_schema(
    anthropic_emulator: EmulatorHandle,
) -> None:
    """A request with output_format json_schema gets text that validates against the schema."""
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["title", "tags"],
        "additionalProperties": False,
    }
    response = httpx.post(
        f"{anthropic_emulator.url}/v1/messages",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": "Describe a linen shirt"}],
            "output_format": {"type": "json_schema", "schema": schema},
        },
    )
    assert response.status_code == 200
    jsonschema.validate(json.loads(response.json()["content"][0]["text"]), schema)
