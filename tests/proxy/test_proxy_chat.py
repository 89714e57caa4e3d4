"""Every task answers the official OpenAI SDK through the proxy: plain, streaming, JSON mode,
tools and multi-image vision, each served by the task's primary provider emulator."""

from __future__ import annotations

import json
import uuid

import openai
import pytest

from emulators.testing import EmulatorHandle

PRIMARY = {
    "captioning": "anthropic",
    "styling": "gemini",
    "vision-analysis": "anthropic",
    "visibility": "gemini",
    "video-summarization": "anthropic",
}
TASKS = sorted(PRIMARY)

# A 1x1 transparent PNG.
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _prompt(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": f"{text} {uuid.uuid4().hex[:8]}"}]


@pytest.mark.parametrize("task", TASKS)
def test_plain_completion_is_served_by_the_primary(
    task: str, client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """A plain chat completion for the task is answered by its primary provider on attempt 1."""
    raw = client.chat.completions.with_raw_response.create(
        model=task, messages=_prompt("describe this dress")
    )
    completion = raw.parse()
    assert raw.headers["x-gateway-provider"] == PRIMARY[task]
    assert raw.headers["x-gateway-attempts"] == "1"
    assert raw.headers["x-gateway-fallback"] == "false"
    assert f"[{PRIMARY[task]}-emulator" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert emulators[PRIMARY[task]].stats()["requests"] == 1


@pytest.mark.parametrize("task", TASKS)
def test_streaming_completion_delivers_chunks_in_order(
    task: str, client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """A streamed completion arrives as several chunks that join into the provider's text."""
    stream = client.chat.completions.create(
        model=task, messages=_prompt("write a long caption for this coat"), stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 1
    assert text.startswith(f"[{PRIMARY[task]}-emulator")
    assert emulators[PRIMARY[task]].stats()["requests"] == 1


@pytest.mark.parametrize("task", TASKS)
def test_json_object_mode_returns_a_json_object(task: str, client: openai.OpenAI) -> None:
    """response_format json_object yields message content that parses as a JSON object."""
    completion = client.chat.completions.create(
        model=task,
        messages=_prompt("return JSON describing this shoe"),
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


@pytest.mark.parametrize("task", TASKS)
def test_json_schema_mode_returns_an_instance_of_the_schema(
    task: str, client: openai.OpenAI
) -> None:
    """response_format json_schema yields JSON carrying the schema's required fields."""
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}, "visible": {"type": "boolean"}},
        "required": ["colour", "visible"],
        "additionalProperties": False,
    }
    completion = client.chat.completions.create(
        model=task,
        messages=_prompt("classify this product"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "product", "schema": schema, "strict": True},
        },
    )
    data = json.loads(completion.choices[0].message.content or "")
    assert isinstance(data["colour"], str)
    assert isinstance(data["visible"], bool)


@pytest.mark.parametrize("task", TASKS)
def test_tools_come_back_as_tool_calls(task: str, client: openai.OpenAI) -> None:
    """A request with a tool gets an OpenAI tool_call naming that tool with JSON arguments."""
    tool = {
        "type": "function",
        "function": {
            "name": "tag_product",
            "description": "Tag a product image",
            "parameters": {
                "type": "object",
                "properties": {"tag": {"type": "string"}},
                "required": ["tag"],
            },
        },
    }
    completion = client.chat.completions.create(
        model=task,
        messages=_prompt("tag this bag"),
        tools=[tool],  # type: ignore[list-item]
    )
    calls = completion.choices[0].message.tool_calls or []
    assert completion.choices[0].finish_reason == "tool_calls"
    assert calls[0].function.name == "tag_product"  # type: ignore[union-attr]
    assert "tag" in json.loads(calls[0].function.arguments)  # type: ignore[union-attr]


@pytest.mark.parametrize("task", TASKS)
def test_multi_image_vision_reaches_the_provider(task: str, client: openai.OpenAI) -> None:
    """Two data-URL images in one message both reach the provider."""
    completion = client.chat.completions.create(
        model=task,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"compare these {uuid.uuid4().hex[:8]}"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                    {"type": "image_url", "image_url": {"url": PNG}},
                ],
            }
        ],
    )
    assert "2 image(s)" in (completion.choices[0].message.content or "")
