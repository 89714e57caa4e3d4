"""Render a planned Reply as OpenAI Chat Completions JSON, stream chunks and error bodies.

Why it exists: the response shapes are what the openai SDK validates; keeping them as pure
functions lets the app module stay a thin router.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import JSONResponse

from emulators.http.content import Conversation, Reply, chunk_text, slices

__all__ = ["completion", "error_response", "stream_events"]

_FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool_calls": "tool_calls"}
_FINGERPRINT = "fp_emulator"
# status -> (type, code) as the real API sends them.
_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}


def error_response(status: int, message: str, param: str | None = None) -> JSONResponse:
    status = 503 if status == 529 else status
    kind, code = _ERRORS.get(status, ("server_error", None))
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
        for call in reply.tool_calls
    ]


def completion(conv: Conversation, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if not reply.tool_calls else None,
        "refusal": None,
    }
    if reply.tool_calls:
        message["tool_calls"] = _tool_calls(reply)
    return {
        "id": f"chatcmpl-{conv.digest()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": conv.model,
        "system_fingerprint": _FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _FINISH[reply.finish],
            }
        ],
        "usage": _usage(reply),
    }


def stream_events(conv: Conversation, reply: Reply, include_usage: bool) -> list[dict[str, Any]]:
    """The chunk objects of a streamed completion, in order (``[DONE]`` is added by the app)."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"chatcmpl-{conv.digest()}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": conv.model,
            "system_fingerprint": _FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    chunks = [chunk({"role": "assistant", "content": "" if not reply.tool_calls else None})]
    for index, call in enumerate(reply.tool_calls):
        head: dict[str, Any] = {"index": index, "id": call.id, "type": "function"}
        head["function"] = {"name": call.name, "arguments": ""}
        chunks.append(chunk({"tool_calls": [head]}))
        for piece in slices(call.arguments_json):
            delta = {"index": index, "function": {"arguments": piece}}
            chunks.append(chunk({"tool_calls": [delta]}))
    if not reply.tool_calls:
        chunks.extend(chunk({"content": piece}) for piece in chunk_text(reply.text))
    chunks.append(chunk({}, _FINISH[reply.finish]))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = _usage(reply)
        chunks.append(last)
    return chunks
