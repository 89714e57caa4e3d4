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


def error_response(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    status = 503 if status == 529 else status
    kind, default_code = _ERRORS.get(status, ("server_error", None))
    code = code or default_code
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def _usage(conv: Conversation, reply: Reply) -> dict[str, int]:
    # Each of the n choices is generated, and billed, separately.
    completion_tokens = reply.output_tokens * conv.choices
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": reply.input_tokens + completion_tokens,
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
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": _FINISH[reply.finish],
            }
            for index in range(conv.choices)
        ],
        "usage": _usage(conv, reply),
    }


def stream_events(conv: Conversation, reply: Reply, include_usage: bool) -> list[dict[str, Any]]:
    """The chunk objects of a streamed completion, in order (``[DONE]`` is added by the app)."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, choice: int = 0) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"chatcmpl-{conv.digest()}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": conv.model,
            "system_fingerprint": _FINGERPRINT,
            "choices": [
                {"index": choice, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
        if include_usage:
            body["usage"] = None
        return body

    chunks: list[dict[str, Any]] = []
    for choice in range(conv.choices):
        opening = {"role": "assistant", "content": "" if not reply.tool_calls else None}
        chunks.append(chunk(opening, choice=choice))
        for index, call in enumerate(reply.tool_calls):
            head: dict[str, Any] = {"index": index, "id": call.id, "type": "function"}
            head["function"] = {"name": call.name, "arguments": ""}
            chunks.append(chunk({"tool_calls": [head]}, choice=choice))
            for piece in slices(call.arguments_json):
                delta = {"index": index, "function": {"arguments": piece}}
                chunks.append(chunk({"tool_calls": [delta]}, choice=choice))
        if not reply.tool_calls:
            pieces = chunk_text(reply.text)
            chunks.extend(chunk({"content": piece}, choice=choice) for piece in pieces)
        chunks.append(chunk({}, _FINISH[reply.finish], choice))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = _usage(conv, reply)
        chunks.append(last)
    return chunks
