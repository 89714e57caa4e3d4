"""Parse an Anthropic Messages request body into a provider-neutral Conversation.

Why it exists: content blocks (text, base64 images, tool_use, tool_result) and the separate
``system`` field are absorbed by one pure function with no I/O. What the API refuses is
checked before, in ``emulators.anthropic.rules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulators.http.content import Conversation, ToolSpec
from emulators.http.errors import BadRequestBody

__all__ = ["BadRequestBody", "parse_request"]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", "")) for b in content if isinstance(b, Mapping) and "text" in b
        )
    return ""


def _blocks(content: Any, index: int) -> tuple[list[str], int, list[str], bool]:
    """(texts, images, tool_result_texts, has_tool_result) of one message's content."""
    if isinstance(content, str):
        return [content], 0, [], False
    if not isinstance(content, list):
        raise BadRequestBody(f"messages.{index}.content: expected a string or an array of blocks")
    texts: list[str] = []
    results: list[str] = []
    images = 0
    for block in content:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "image":
            images += 1
        elif kind == "tool_result":
            results.append(_text_of(block.get("content", "")))
            inner = block.get("content")
            if isinstance(inner, list):
                images += sum(isinstance(b, Mapping) and b.get("type") == "image" for b in inner)
        elif kind == "tool_use":
            texts.append(str(block.get("input", "")))
        # Other block types (documents, thinking, server tools) were checked by the rules
        # and do not change the emulated answer.
    return texts, images, results, bool(results)


def _tools(body: Mapping[str, Any]) -> tuple[ToolSpec, ...]:
    specs = []
    for i, tool in enumerate(body.get("tools") or []):
        if not tool.get("name"):
            raise BadRequestBody(f"tools.{i}.name: Field required")
        schema = tool.get("input_schema") or {"type": "object", "properties": {}}
        specs.append(ToolSpec(tool["name"], tool.get("description", ""), schema))
    return tuple(specs)


def _tool_choice(value: Any) -> str:
    if not value:
        return "auto"
    kind = value.get("type")
    if kind == "tool":
        return str(value.get("name", ""))
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind, "auto")


def _output_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    # Structured outputs: the beta `output_format` and its successor `output_config.format`
    # both carry {"type": "json_schema", "schema": {...}}; the reply must be an instance of it.
    config = body.get("output_config")
    fmt = body.get("output_format")
    if fmt is None and isinstance(config, Mapping):
        fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        raise BadRequestBody("output_format.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, Mapping):
        raise BadRequestBody("output_format.schema: Field required")
    return schema


def parse_request(body: Mapping[str, Any]) -> Conversation:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestBody("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequestBody("max_tokens: Field required (a positive integer)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequestBody("messages: at least one message is required")
    system = _text_of(body.get("system", ""))
    texts = [system] if system else []
    images = 0
    last_user = ""
    last_results: list[str] = []
    after_tool = False
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise BadRequestBody(f"messages.{index}.role: must be 'user' or 'assistant'")
        parts, count, results, has_result = _blocks(message.get("content"), index)
        texts.extend(parts)
        texts.extend(results)
        images += count
        if message["role"] == "user":
            after_tool = has_result
            last_results = results or last_results
            if parts:
                last_user = "\n".join(parts)
    stops = body.get("stop_sequences") or []
    return Conversation(
        provider="anthropic",
        model=model,
        texts=tuple(texts),
        last_user_text=last_user,
        image_count=images,
        tools=_tools(body),
        tool_choice=_tool_choice(body.get("tool_choice")),
        after_tool_result=after_tool,
        tool_result_text="\n".join(last_results),
        max_tokens=max_tokens,
        stop=tuple(str(s) for s in stops),
        json_schema=_output_schema(body),
    )
