"""What the provider transforms share: the prepared request, OpenAI response builders, and the
SSE event reader.

Why it exists: each provider module is a pair of pure functions (request out, answer in) and a
small stream state machine; the shapes they produce (OpenAI `chat.completion` and
`chat.completion.chunk` dicts, plain JSON-ready dicts rather than pydantic objects, since
building those is most of what LiteLLM's response path costs) are built here once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "SUPPORTED_PARAMS",
    "Prepared",
    "StreamError",
    "chunk",
    "completion",
    "image_parts_inline",
    "new_id",
    "sse_data",
]

# The OpenAI parameters every owned provider transforms faithfully (the LiteLLM path keeps the
# rest: audio, prediction, reasoning, web search, ...).
SUPPORTED_PARAMS = frozenset(
    {
        "messages",
        "temperature",
        "top_p",
        "stream",
        "stream_options",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "user",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
    }
)
_ROLES = frozenset({"system", "user", "assistant", "tool"})
_PART_TYPES = frozenset({"text", "image_url"})


@dataclass(slots=True)
class Prepared:
    """One provider request ready to send, and what reading its answer needs to know."""

    url: str
    headers: dict[str, str]
    body: bytes
    model: str
    include_usage: bool = False
    # Anthropic: the answer arrives as the forced `json_tool_call` tool and becomes content.
    json_mode: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class StreamError(Exception):
    """An error the provider reported inside a stream, as the HTTP answer it stands for;
    the transport translates it like any other error answer."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _part_inline(part: Any) -> bool:
    if not isinstance(part, dict) or part.get("type") not in _PART_TYPES:
        return False
    if "cache_control" in part:
        return False
    if part["type"] != "image_url":
        return True
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    return isinstance(url, str) and url.startswith("data:")


def _message_inline(message: Any) -> bool:
    if not isinstance(message, dict) or message.get("role") not in _ROLES:
        return False
    if "cache_control" in message:
        return False
    content = message.get("content")
    if content is None or isinstance(content, str):
        return True
    return isinstance(content, list) and all(_part_inline(part) for part in content)


def image_parts_inline(messages: Any) -> bool:
    """Whether every message is one the transforms carry without I/O: known roles, text and
    data-URL images only (LiteLLM downloads http(s) images itself), no cache-control marks."""
    if not isinstance(messages, list) or not messages:
        return False
    return all(_message_inline(message) for message in messages)


def completion(
    ident: str,
    model: str,
    message: dict[str, Any],
    finish_reason: str,
    usage: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    }


def chunk(
    ident: str,
    model: str,
    delta: Mapping[str, Any] | None,
    finish_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A `chat.completion.chunk`; `delta=None` makes the usage-only chunk (empty choices)."""
    out: dict[str, Any] = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
    }
    if delta is not None:
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        if finish_reason is not None:
            choice["finish_reason"] = finish_reason
        out["choices"].append(choice)
    if usage is not None:
        out["usage"] = usage
    return out


async def sse_data(pieces: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    """The JSON `data:` payloads of an SSE byte stream, in order; ends at `data: [DONE]`.
    Lines are split here rather than by the client, whose line reader caps line length (a
    streamed image part is one long line)."""
    pending = b""
    data: list[bytes] = []
    async for piece in pieces:
        pending += piece
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r")
            if line.startswith(b"data:"):
                data.append(line[5:].lstrip())
            elif not line and data:
                payload = b"\n".join(data)
                data.clear()
                if payload == b"[DONE]":
                    return
                yield orjson.loads(payload)
            # event:, id:, comments and keep-alives carry nothing the transforms read.
    if pending.rstrip(b"\r").startswith(b"data:"):
        data.append(pending.rstrip(b"\r")[5:].lstrip())
    if data and (payload := b"\n".join(data)) != b"[DONE]":
        yield orjson.loads(payload)
