"""Parse an OpenAI Chat Completions request body into a provider-neutral Conversation.

Why it exists: the app stays thin when the wire format's quirks (string-or-parts content,
legacy ``functions``, ``max_completion_tokens``, ``stop`` as string or list) are absorbed
by one pure function with no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulators.http.content import Conversation, ToolSpec
from emulators.http.errors import BadRequestBody

__all__ = ["BadRequestBody", "parse_request"]


def _content(content: Any) -> tuple[str, int]:
    """Text and image count of one message's content."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise BadRequestBody("message content must be a string or an array of parts", "messages")
    texts: list[str] = []
    images = 0
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url")
            if not url:
                raise BadRequestBody("image_url part without a url", "messages")
            images += 1
        elif kind in ("input_audio", "file", "refusal"):
            continue
        else:
            raise BadRequestBody(f"unsupported content part type: {kind!r}", "messages")
    return "\n".join(texts), images


def _tools(body: Mapping[str, Any]) -> tuple[ToolSpec, ...]:
    specs: list[ToolSpec] = []
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        if not fn.get("name"):
            raise BadRequestBody("each tool needs function.name", "tools")
        specs.append(ToolSpec(fn["name"], fn.get("description", ""), fn.get("parameters") or {}))
    for fn in body.get("functions") or []:
        specs.append(ToolSpec(fn["name"], fn.get("description", ""), fn.get("parameters") or {}))
    return tuple(specs)


def _tool_choice(value: Any) -> str:
    if value is None:
        return "auto"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        name = (value.get("function") or {}).get("name") or value.get("name")
        if name:
            return str(name)
    raise BadRequestBody("invalid tool_choice", "tool_choice")


def parse_request(body: Mapping[str, Any]) -> Conversation:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestBody("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequestBody("messages must be a non-empty array", "messages")
    texts: list[str] = []
    images = 0
    last_user = ""
    last_tool = ""
    for message in messages:
        if not isinstance(message, Mapping) or "role" not in message:
            raise BadRequestBody("each message needs a role", "messages")
        text, count = _content(message.get("content"))
        texts.append(text)
        images += count
        for call in message.get("tool_calls") or []:
            texts.append(str((call.get("function") or {}).get("arguments", "")))
        if message["role"] == "user":
            last_user = text
        elif message["role"] in ("tool", "function"):
            last_tool = text
    response_format = body.get("response_format") or {}
    schema = None
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
    stop = body.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    return Conversation(
        provider="openai",
        model=model,
        texts=tuple(texts),
        last_user_text=last_user,
        image_count=images,
        tools=_tools(body),
        tool_choice=_tool_choice(body.get("tool_choice") or body.get("function_call")),
        after_tool_result=messages[-1].get("role") in ("tool", "function"),
        tool_result_text=last_tool,
        json_schema=schema,
        json_mode=response_format.get("type") == "json_object",
        max_tokens=int(max_tokens) if max_tokens else None,
        stop=stops,
        choices=int(body.get("n") or 1),
    )
