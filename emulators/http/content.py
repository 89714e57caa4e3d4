"""Deterministic replies shared by every provider emulator.

Why it exists: each provider parses its own wire format into one ``Conversation``; the reply
(text, tool calls, JSON, truncation, stop sequences, token counts) is then decided here once,
so the three emulators agree and tests can predict every answer from the request alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from emulators.http.schema import generate_instance

__all__ = [
    "IMAGE_TOKENS",
    "Conversation",
    "Finish",
    "Reply",
    "ToolSpec",
    "ToolUse",
    "chunk_text",
    "estimate_tokens",
    "plan_reply",
    "prompt_tokens",
    "slices",
]

# A fixed per-image cost keeps usage predictable; real providers charge by resolution.
IMAGE_TOKENS = 258
_CHARS_PER_TOKEN = 4
_PROMPT_WORDS = 8
_MARKER = re.compile(r"\[\[fault:[^\]]*\]\]")

Finish = Literal["stop", "length", "stop_sequence", "tool_calls"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Conversation:
    """The provider-neutral facts of one request that decide its reply."""

    provider: str
    model: str
    texts: tuple[str, ...] = ()
    last_user_text: str = ""
    image_count: int = 0
    tools: tuple[ToolSpec, ...] = ()
    # "auto", "none", "required" (any tool) or a tool name.
    tool_choice: str = "auto"
    after_tool_result: bool = False
    tool_result_text: str = ""
    json_schema: Mapping[str, Any] | None = None
    json_mode: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    # The client asked for image output (Gemini responseModalities containing IMAGE).
    wants_image: bool = False
    # How many alternative answers to send (OpenAI n, Gemini candidateCount); all are alike.
    choices: int = 1

    @property
    def all_text(self) -> str:
        return "\n".join(self.texts)

    def digest(self) -> str:
        return hashlib.sha256(self.last_user_text.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class ToolUse:
    id: str
    name: str
    arguments: Mapping[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    finish: Finish
    input_tokens: int
    output_tokens: int
    tool_calls: tuple[ToolUse, ...] = ()
    stop_sequence: str | None = None


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN) if text else 0


def _first_words(text: str) -> str:
    words = _MARKER.sub("", text).split()
    head = " ".join(words[:_PROMPT_WORDS])
    return head + (" ..." if len(words) > _PROMPT_WORDS else "")


def prompt_tokens(conv: Conversation) -> int:
    """The prompt tokens ``conv`` is billed (and checked against a context window) for."""
    tools = sum(estimate_tokens(t.name + json.dumps(dict(t.parameters))) for t in conv.tools)
    return max(1, estimate_tokens(conv.all_text) + conv.image_count * IMAGE_TOKENS + tools)


def _pick_tool(conv: Conversation) -> ToolSpec | None:
    if not conv.tools or conv.tool_choice == "none" or conv.after_tool_result:
        return None
    for tool in conv.tools:
        if tool.name == conv.tool_choice:
            return tool
    return conv.tools[0]


def _text_for(conv: Conversation) -> str:
    tag = f"[{conv.provider}-emulator {conv.model}]"
    if conv.json_schema is not None:
        return json.dumps(generate_instance(conv.json_schema, conv.digest()))
    if conv.json_mode:
        body = {
            "emulator": conv.provider,
            "model": conv.model,
            "images": conv.image_count,
            "summary": _first_words(conv.last_user_text),
        }
        return json.dumps(body)
    if conv.after_tool_result:
        return f"{tag} tool result received: {_first_words(conv.tool_result_text)}"
    return (
        f"{tag} {conv.image_count} image(s); re: {_first_words(conv.last_user_text)} "
        f"(digest {conv.digest()})"
    )


def plan_reply(conv: Conversation, id_prefix: str = "call_") -> Reply:
    """Decide the whole answer to ``conv``; providers only render it."""
    input_tokens = prompt_tokens(conv)
    tool = _pick_tool(conv)
    if tool is not None:
        call = ToolUse(
            id=f"{id_prefix}{conv.digest()}{len(conv.texts):04d}",
            name=tool.name,
            arguments=_as_object(generate_instance(tool.parameters, conv.digest())),
        )
        return Reply(
            text="",
            finish="tool_calls",
            input_tokens=input_tokens,
            output_tokens=max(1, estimate_tokens(call.arguments_json)),
            tool_calls=(call,),
        )
    text = _text_for(conv)
    finish: Finish = "stop"
    matched: str | None = None
    cuts = [(text.find(s), s) for s in conv.stop if s and s in text]
    if cuts:
        index, matched = min(cuts)
        text, finish = text[:index], "stop_sequence"
    if conv.max_tokens is not None and estimate_tokens(text) > conv.max_tokens:
        text, finish, matched = text[: conv.max_tokens * _CHARS_PER_TOKEN], "length", None
    return Reply(
        text=text,
        finish=finish,
        input_tokens=input_tokens,
        output_tokens=estimate_tokens(text),
        stop_sequence=matched,
    )


def _as_object(value: Any) -> Mapping[str, Any]:
    # Tool arguments are always an object on the wire, even for a schema-less tool.
    return value if isinstance(value, dict) else {}


def chunk_text(text: str, words_per_chunk: int = 3) -> list[str]:
    """Split ``text`` into streaming deltas that concatenate back to ``text`` exactly."""
    parts = re.findall(r"\S+\s*|\s+", text)
    return [
        "".join(parts[i : i + words_per_chunk]) for i in range(0, len(parts), words_per_chunk)
    ] or [""]


def slices(text: str, size: int = 16) -> list[str]:
    """Fixed-size pieces of ``text`` (streamed tool arguments are arbitrary JSON fragments)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
