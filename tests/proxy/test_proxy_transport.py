"""The direct transport against each provider's emulator: the OpenAI answers it builds for
text, system prompts, tools, JSON modes, images, stop sequences and streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from transport_support import PNG, PROVIDERS, TOOL, deployment, user

from emulators.testing import EmulatorHandle
from proxy.transport import Transport

pytestmark = pytest.mark.parametrize("provider", PROVIDERS)

KEY = "sk-transport-test-key-0001"


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    """A started transport, closed after the test."""
    running = Transport()
    await running.start()
    yield running
    await running.aclose()


async def _complete(
    transport: Transport, provider: str, handle: EmulatorHandle, **params: Any
) -> dict[str, Any]:
    target = deployment(provider, handle)
    assert transport.owns(target, params)
    return await transport.complete(target, KEY, params, timeout_s=10)


def _message(answer: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = answer["choices"][0]["message"]
    return message


async def test_text_answer_is_an_openai_completion(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A plain request comes back as a chat.completion with text, finish_reason and usage."""
    answer = await _complete(transport, provider, emulators[provider], messages=user("hello"))
    assert answer["object"] == "chat.completion"
    assert _message(answer)["role"] == "assistant"
    assert _message(answer)["content"].startswith(f"[{provider}-emulator")
    assert answer["choices"][0]["finish_reason"] == "stop"
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert emulators[provider].stats()["requests"] == 1


async def test_system_prompt_reaches_the_provider(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A system message is sent: the provider counts its tokens into the prompt."""
    plain = await _complete(transport, provider, emulators[provider], messages=user("hi"))
    system = {"role": "system", "content": "You describe fashion products. " * 20}
    with_system = await _complete(
        transport, provider, emulators[provider], messages=[system, *user("hi")]
    )
    assert with_system["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 100


async def test_tool_call_and_tool_result_round_trip(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A tool comes back as a tool_call; its result sent back yields the final text."""
    messages = user("tag this bag")
    first = await _complete(
        transport, provider, emulators[provider], messages=messages, tools=[TOOL]
    )
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    call = _message(first)["tool_calls"][0]
    assert call["function"]["name"] == "tag_product"
    assert isinstance(json.loads(call["function"]["arguments"])["tag"], str)
    follow_up = [
        *messages,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "tagged: leather tote"},
    ]
    second = await _complete(
        transport, provider, emulators[provider], messages=follow_up, tools=[TOOL]
    )
    # Gemini gets the result wrapped as {"content": ...}, as LiteLLM sends it.
    assert "tool result received:" in _message(second)["content"]
    assert "tagged: leather tote" in _message(second)["content"]
    assert second["choices"][0]["finish_reason"] == "stop"


async def test_json_object_mode_answers_a_json_object(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """response_format json_object yields content that parses as a JSON object."""
    # The fast path sends Anthropic an any-object schema for json_object (chat_params.adapt).
    response_format: dict[str, Any] = (
        {
            "type": "json_schema",
            "json_schema": {"name": "json_object", "schema": {"type": "object"}},
        }
        if provider == "anthropic"
        else {"type": "json_object"}
    )
    answer = await _complete(
        transport,
        provider,
        emulators[provider],
        messages=user("return JSON describing this shoe"),
        response_format=response_format,
    )
    assert isinstance(json.loads(_message(answer)["content"]), dict)
    assert answer["choices"][0]["finish_reason"] == "stop"


async def test_json_schema_mode_answers_an_instance(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """response_format json_schema yields JSON content with the schema's required fields."""
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}, "visible": {"type": "boolean"}},
        "required": ["colour", "visible"],
        "additionalProperties": False,
    }
    answer = await _complete(
        transport,
        provider,
        emulators[provider],
        messages=user("classify this product"),
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )
    data = json.loads(_message(answer)["content"])
    assert isinstance(data["colour"], str)
    assert isinstance(data["visible"], bool)
    assert "tool_calls" not in _message(answer)


async def test_data_url_images_reach_the_provider(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """Two data-URL image parts arrive at the provider as two images."""
    content = [
        {"type": "text", "text": "compare these"},
        {"type": "image_url", "image_url": {"url": PNG}},
        {"type": "image_url", "image_url": {"url": PNG}},
    ]
    answer = await _complete(
        transport, provider, emulators[provider], messages=[{"role": "user", "content": content}]
    )
    assert "2 image(s)" in _message(answer)["content"]


async def test_stop_sequence_cuts_the_answer(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """`stop` reaches the provider, whose answer ends before the sequence."""
    answer = await _complete(
        transport, provider, emulators[provider], messages=user("describe"), stop=["image"]
    )
    content = _message(answer)["content"]
    assert content.startswith(f"[{provider}-emulator")
    assert "image" not in content
    assert answer["choices"][0]["finish_reason"] == "stop"


async def test_max_tokens_truncates_with_finish_reason_length(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """max_tokens reaches the provider; a truncated answer finishes with `length`."""
    answer = await _complete(
        transport, provider, emulators[provider], messages=user("describe"), max_tokens=3
    )
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] <= 3


async def _chunks(
    transport: Transport, provider: str, handle: EmulatorHandle, **params: Any
) -> list[dict[str, Any]]:
    target = deployment(provider, handle)
    params = {**params, "stream": True, "stream_options": {"include_usage": True}}
    assert transport.owns(target, params)
    return [c async for c in transport.stream(target, KEY, params, timeout_s=10)]


async def test_stream_delivers_content_then_finish_then_usage(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A stream's chunks join into the text, end with a finish_reason, then usage."""
    chunks = await _chunks(
        transport, provider, emulators[provider], messages=user("write a long caption")
    )
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith(f"[{provider}-emulator")
    assert len([c for c in chunks if c["choices"]]) > 2
    finishes = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["stop"]
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_stream_of_a_tool_call_joins_into_its_arguments(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A streamed tool call names the tool and its argument pieces join into JSON."""
    chunks = await _chunks(
        transport, provider, emulators[provider], messages=user("tag this"), tools=[TOOL]
    )
    calls = [
        call
        for c in chunks
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls") or []
    ]
    names = [c["function"]["name"] for c in calls if c["function"].get("name")]
    arguments = "".join(c["function"].get("arguments") or "" for c in calls)
    assert names == ["tag_product"]
    assert isinstance(json.loads(arguments)["tag"], str)
    finishes = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
    assert "tool_calls" in finishes


async def test_stream_in_json_schema_mode_streams_the_json_as_content(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A streamed json_schema answer arrives as content (never as a tool call)."""
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    chunks = await _chunks(
        transport,
        provider,
        emulators[provider],
        messages=user("json please"),
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    text = "".join(d.get("content") or "" for d in deltas)
    assert isinstance(json.loads(text)["a"], str)
    assert not any(d.get("tool_calls") for d in deltas)


async def test_provider_key_is_sent_in_the_providers_header(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """With only KEY allowed the call succeeds: the key travels where the provider reads it."""
    emulators[provider].configure(allowed_keys=[KEY])
    answer = await _complete(transport, provider, emulators[provider], messages=user("hi"))
    assert answer["choices"][0]["finish_reason"] == "stop"
