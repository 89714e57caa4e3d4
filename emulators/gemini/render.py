"""Render a planned Reply as Gemini GenerateContentResponse objects and error bodies.

Why it exists: google-genai parses these objects (candidates, parts, finishReason,
usageMetadata) for both the unary and the SSE stream form; pure functions keep them in one
place for both.
"""

from __future__ import annotations

import base64
from typing import Any

from starlette.responses import JSONResponse

from emulators.http.content import Conversation, Reply, chunk_text
from emulators.http.images import solid_png

__all__ = ["IMAGE_OUTPUT_TOKENS", "error_response", "response", "stream_chunks"]

_FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}
# What Gemini bills for one generated 1K image.
IMAGE_OUTPUT_TOKENS = 1290
_SAFETY = [
    {"category": c, "probability": "NEGLIGIBLE"}
    for c in (
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    )
]


def error_response(status: int, message: str) -> JSONResponse:
    status = 503 if status == 529 else status
    body = {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}
    return JSONResponse(body, status_code=status)


def _with_image(conv: Conversation, reply: Reply) -> bool:
    return conv.wants_image and not reply.tool_calls


def _image_part(conv: Conversation) -> dict[str, Any]:
    data = base64.b64encode(solid_png(conv.digest())).decode()
    return {"inlineData": {"mimeType": "image/png", "data": data}}


def _usage(conv: Conversation, reply: Reply, output_tokens: int | None = None) -> dict[str, int]:
    out = reply.output_tokens if output_tokens is None else output_tokens
    if output_tokens is None and _with_image(conv, reply):
        out += IMAGE_OUTPUT_TOKENS
    out *= conv.choices  # every candidate is generated and billed
    return {
        "promptTokenCount": reply.input_tokens,
        "candidatesTokenCount": out,
        "totalTokenCount": reply.input_tokens + out,
    }


def _envelope(
    conv: Conversation, parts: list[dict[str, Any]], finish: str | None, usage: dict[str, int]
) -> dict[str, Any]:
    candidates: list[dict[str, Any]] = []
    for index in range(conv.choices):
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": index}
        if finish is not None:
            candidate["finishReason"] = finish
            candidate["safetyRatings"] = _SAFETY
        candidates.append(candidate)
    return {
        "candidates": candidates,
        "usageMetadata": usage,
        "modelVersion": conv.model,
        "responseId": f"emu{conv.digest()}",
    }


def _parts(conv: Conversation, reply: Reply) -> list[dict[str, Any]]:
    if reply.tool_calls:
        return [
            {"functionCall": {"name": c.name, "args": dict(c.arguments)}} for c in reply.tool_calls
        ]
    text = [{"text": reply.text}]
    return [*text, _image_part(conv)] if _with_image(conv, reply) else text


def response(conv: Conversation, reply: Reply) -> dict[str, Any]:
    return _envelope(conv, _parts(conv, reply), _FINISH[reply.finish], _usage(conv, reply))


def stream_chunks(conv: Conversation, reply: Reply) -> list[dict[str, Any]]:
    """Streamed responses: text deltas, the last one carrying finishReason and full usage."""
    if reply.tool_calls:
        return [response(conv, reply)]
    pieces = chunk_text(reply.text)
    chunks = [
        _envelope(conv, [{"text": piece}], None, _usage(conv, reply, 0)) for piece in pieces[:-1]
    ]
    last: list[dict[str, Any]] = [{"text": pieces[-1]}]
    if _with_image(conv, reply):
        last.append(_image_part(conv))
    chunks.append(_envelope(conv, last, _FINISH[reply.finish], _usage(conv, reply)))
    return chunks
