"""Render a planned Reply as Anthropic Messages JSON, SSE events and error bodies.

Why it exists: the anthropic SDK's stream accumulator is strict about event order and block
shapes; keeping them as pure functions makes that order easy to read and test.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from emulators.http.content import Conversation, Reply, chunk_text, slices
from emulators.http.pipeline import sse

__all__ = ["error_response", "message", "stream_events"]

_STOP = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}
_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    529: "overloaded_error",
}


def error_response(status: int, message: str) -> JSONResponse:
    # Anthropic signals overload with its own 529 rather than 503.
    status = 529 if status == 503 else status
    body = {
        "type": "error",
        "error": {"type": _ERRORS.get(status, "api_error"), "message": message},
    }
    return JSONResponse(body, status_code=status)


def _message_id(conv: Conversation) -> str:
    return f"msg_emu{conv.digest()}{len(conv.texts):06d}"


def _blocks(reply: Reply) -> list[dict[str, Any]]:
    if reply.tool_calls:
        return [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
            for c in reply.tool_calls
        ]
    return [{"type": "text", "text": reply.text}]


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def message(conv: Conversation, reply: Reply) -> dict[str, Any]:
    return {
        "id": _message_id(conv),
        "type": "message",
        "role": "assistant",
        "model": conv.model,
        "content": _blocks(reply),
        "stop_reason": _STOP[reply.finish],
        "stop_sequence": reply.stop_sequence,
        "usage": _usage(reply.input_tokens, reply.output_tokens),
    }


def stream_events(conv: Conversation, reply: Reply) -> list[str]:
    """The SSE events of a streamed message, in the order the real API sends them."""
    start = message(conv, reply)
    start.update(content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = _usage(reply.input_tokens, 1)
    events = [
        sse({"type": "message_start", "message": start}, "message_start"),
        sse({"type": "ping"}, "ping"),
    ]
    for index, block in enumerate(_blocks(reply)):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in chunk_text(reply.text)]
        else:
            opening = {**block, "input": {}}
            arguments = reply.tool_calls[index].arguments_json
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in slices(arguments)]
        head = {"type": "content_block_start", "index": index, "content_block": opening}
        events.append(sse(head, "content_block_start"))
        for delta in deltas:
            body = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(sse(body, "content_block_delta"))
        events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    tail = {
        "type": "message_delta",
        "delta": {"stop_reason": _STOP[reply.finish], "stop_sequence": reply.stop_sequence},
        "usage": {"output_tokens": reply.output_tokens},
    }
    events.append(sse(tail, "message_delta"))
    events.append(sse({"type": "message_stop"}, "message_stop"))
    return events
