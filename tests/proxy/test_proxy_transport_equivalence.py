"""The direct transport answers as `litellm.acompletion` does: the same requests through both,
against the same emulators, give the same choices, messages, finish reasons and usage (ids and
timestamps aside); and `owns()` leaves to LiteLLM what the transport does not carry."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import litellm
import pytest
from transport_support import MODELS, PNG, PROVIDERS, TOOL, base_url, deployment

from emulators.testing import EmulatorHandle
from proxy.routing import Deployment
from proxy.transport import Transport

KEY = "sk-transport-equivalence-0003"
_SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}, "sizes": {"type": "array"}},
    "required": ["colour", "sizes"],
}


def _requests(provider: str) -> dict[str, dict[str, Any]]:
    """Each request kind, fresh (the emulators' answers depend on the text only)."""
    tag = uuid.uuid4().hex[:8]
    call = {
        "id": "call_prior0001",
        "type": "function",
        "function": {"name": "tag_product", "arguments": '{"tag": "tote"}'},
    }
    any_object = (
        {
            "type": "json_schema",
            "json_schema": {"name": "json_object", "schema": {"type": "object"}},
        }
        if provider == "anthropic"
        else {"type": "json_object"}
    )
    return {
        "text": {"messages": [{"role": "user", "content": f"describe {tag}"}]},
        "system": {
            "messages": [
                {"role": "system", "content": "Answer as a stylist."},
                {"role": "user", "content": f"style {tag}"},
            ],
            "temperature": 0.2,
            "top_p": 0.9,
        },
        "tools": {
            "messages": [{"role": "user", "content": f"tag {tag}"}],
            "tools": [TOOL],
            "tool_choice": "auto",
        },
        "tool_result": {
            "messages": [
                {"role": "user", "content": f"tag {tag}"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_prior0001", "content": "done: tote"},
            ],
            "tools": [TOOL],
        },
        "json_object": {
            "messages": [{"role": "user", "content": f"json {tag}"}],
            "response_format": any_object,
        },
        "json_schema": {
            "messages": [{"role": "user", "content": f"classify {tag}"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "product", "schema": _SCHEMA},
            },
        },
        "image": {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": f"look {tag}"},
                        {"type": "image_url", "image_url": {"url": PNG}},
                    ],
                }
            ]
        },
        "stop": {"messages": [{"role": "user", "content": f"say {tag}"}], "stop": ["image"]},
        "max_tokens": {"messages": [{"role": "user", "content": f"long {tag}"}], "max_tokens": 4},
    }


KINDS = list(_requests("openai"))


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    """A started transport, closed after the test."""
    running = Transport()
    await running.start()
    yield running
    await running.aclose()


def _call(call: dict[str, Any], provider: str) -> dict[str, Any]:
    function = call["function"]
    normal = {
        "type": call.get("type", "function"),
        "name": function["name"],
        "arguments": json.loads(function["arguments"]),
    }
    # Gemini's answers carry no id: both sides make up a random one.
    if provider != "gemini":
        normal["id"] = call["id"]
    return normal


def _normal(answer: dict[str, Any], provider: str) -> dict[str, Any]:
    choices = []
    for choice in answer["choices"]:
        message = choice["message"]
        choices.append(
            {
                "index": choice["index"],
                "finish_reason": choice["finish_reason"],
                "role": message["role"],
                "content": message.get("content"),
                "tool_calls": [_call(c, provider) for c in message.get("tool_calls") or []],
            }
        )
    usage = answer["usage"]
    counts = {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {"choices": choices, "usage": counts}


async def _through_litellm(provider: str, handle: EmulatorHandle, params: dict[str, Any]) -> Any:
    return await litellm.acompletion(
        model=MODELS[provider],
        api_base=base_url(provider, handle),
        api_key=KEY,
        num_retries=0,
        drop_params=True,
        **params,
    )


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", KINDS)
async def test_answers_equal_litellms(
    provider: str, kind: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """The transport's answer equals LiteLLM's for the same request."""
    params = _requests(provider)[kind]
    target = deployment(provider, emulators[provider])
    assert transport.owns(target, params)
    direct = await transport.complete(target, KEY, params, timeout_s=10)
    reference = (await _through_litellm(provider, emulators[provider], params)).model_dump()
    assert _normal(direct, provider) == _normal(reference, provider)


def _stream_summary(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    text = ""
    names: list[str] = []
    arguments = ""
    finish = None
    usage = None
    for item in chunks:
        if item.get("usage"):
            counts = ("prompt_tokens", "completion_tokens", "total_tokens")
            usage = {k: item["usage"][k] for k in counts}
        for choice in item.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                function = call.get("function") or {}
                if function.get("name"):
                    names.append(function["name"])
                arguments += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {
        "text": text,
        "names": names,
        "arguments": json.loads(arguments) if arguments else None,
        "finish_reason": finish,
        "usage": usage,
    }


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", ["text", "tools", "json_schema"])
async def test_streams_equal_litellms(
    provider: str, kind: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A streamed answer joins into the same text, tool calls, finish reason and usage."""
    params = {
        **_requests(provider)[kind],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    target = deployment(provider, emulators[provider])
    direct = [c async for c in transport.stream(target, KEY, params, timeout_s=10)]
    stream = await _through_litellm(provider, emulators[provider], params)
    reference = [c.model_dump() async for c in stream]
    assert _stream_summary(direct) == _stream_summary(reference)


def _other(provider: str, model: str, **params: Any) -> Deployment:
    return Deployment(
        group="tests",
        provider=provider,
        model=model,
        key_env=None,
        literal_key=None,
        params={"model": model, **params},
    )


@pytest.mark.parametrize(
    ("target", "params"),
    [
        (_other("vertex_ai", "vertex_ai/gemini-3-pro-preview"), {}),
        (_other("fal", "fal/fal-ai/flux-lora"), {}),
        (_other("gemini", "gemini/gemini-2.5-flash", vertex_project="p"), {}),
        (_other("openai", "openai/gpt-4o"), {"prediction": {"type": "content", "content": "x"}}),
        (_other("openai", "openai/gpt-4o"), {"audio": {"voice": "alloy", "format": "wav"}}),
        (_other("anthropic", "anthropic/claude-sonnet-4-5"), {"n": 2}),
        (_other("anthropic", "anthropic/claude-sonnet-4-5"), {"reasoning_effort": "low"}),
        (
            _other("anthropic", "anthropic/claude-sonnet-4-5"),
            {"response_format": {"type": "regex"}},
        ),
    ],
    ids=["vertex_ai", "fal", "vertex-params", "prediction", "audio", "n", "reasoning", "format"],
)
def test_what_the_transport_does_not_carry_stays_on_litellm(
    target: Deployment, params: dict[str, Any]
) -> None:
    """Other providers, their params and features outside the transforms are not owned."""
    request = {"messages": [{"role": "user", "content": "hi"}], **params}
    assert not Transport().owns(target, request)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    "content",
    [
        [{"type": "image_url", "image_url": {"url": "https://example.test/dress.png"}}],
        [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
        [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
    ],
    ids=["http-image", "cache-control", "audio"],
)
def test_messages_the_transforms_cannot_carry_stay_on_litellm(
    provider: str, content: list[dict[str, Any]]
) -> None:
    """Remote images (LiteLLM downloads them), cache marks and audio parts are not owned."""
    target = _other(provider, MODELS[provider])
    assert Transport().owns(target, {"messages": [{"role": "user", "content": "plain"}]})
    assert not Transport().owns(target, {"messages": [{"role": "user", "content": content}]})
