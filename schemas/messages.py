"""OpenAI chat message shapes carried inside request and result events.

Why our own Structs rather than the openai SDK's types: events are decoded on the Kafka hot path
with msgspec (validation included) and must stay stable when the SDK changes. The shapes match
the OpenAI Chat Completions wire format, so a message can be forwarded to the proxy unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ChatMessage",
    "ContentPart",
    "ImagePart",
    "ImageURL",
    "TextPart",
    "ToolCall",
    "ToolCallFunction",
    "Usage",
]


class ImageURL(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An image reference: an https URL or a `data:` URL with base64 content."""

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="text"):
    """A text part of a multi-part message."""

    text: str


class ImagePart(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="image_url", omit_defaults=True
):
    """An image part of a multi-part message (vision input)."""

    image_url: ImageURL


ContentPart = TextPart | ImagePart


class ToolCallFunction(msgspec.Struct, frozen=True, kw_only=True):
    """The function a model asked to call; `arguments` is the model's JSON text, unparsed."""

    name: str
    arguments: str


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """One tool call returned by a model."""

    id: str
    function: ToolCallFunction
    type: Literal["function"] = "function"


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One chat message: plain text content or a list of text / image parts."""

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Token accounting reported by the provider."""

    prompt_tokens: Annotated[int, msgspec.Meta(ge=0)] = 0
    completion_tokens: Annotated[int, msgspec.Meta(ge=0)] = 0
    total_tokens: Annotated[int, msgspec.Meta(ge=0)] = 0


# JSON values (response_format, tools) pass through to the provider untouched.
JsonObject = dict[str, Any]
