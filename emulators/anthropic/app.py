"""The Anthropic Messages emulator app (``POST /v1/messages``).

Why it exists: the proxy and its tests need an Anthropic upstream that the official SDK
accepts unchanged, answers deterministically and fails on demand.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.anthropic.render import error_response, message, stream_events
from emulators.anthropic.wire import WireError, parse_request
from emulators.http.content import plan_reply
from emulators.http.control import build_app, runtime_of
from emulators.http.pipeline import guard, sse_response
from emulators.http.runtime import EmulatorRuntime, EmulatorSettings

__all__ = ["create_app"]


def create_app(settings: EmulatorSettings | None = None) -> Starlette:
    runtime = EmulatorRuntime(settings or EmulatorSettings())
    return build_app([Route("/v1/messages", _messages, methods=["POST"])], runtime)


def _key(request: Request) -> str | None:
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


# Each early return is one of the API's checks, in the order the real service applies them.
async def _messages(request: Request) -> Response:  # noqa: PLR0911
    runtime = runtime_of(request)
    try:
        body: Any = json.loads(await request.body())
    except ValueError:
        body = None
    model = body.get("model") if isinstance(body, dict) else None
    runtime.record(request.url.path, model if isinstance(model, str) else None)
    if not runtime.key_allowed(_key(request)):
        return error_response(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return error_response(400, "anthropic-version: header is required")
    if not isinstance(body, dict):
        return error_response(400, "request body is not valid JSON")
    try:
        conv = parse_request(body)
    except WireError as exc:
        return error_response(400, str(exc))
    failure = await guard(
        request,
        runtime,
        key=_key(request),
        conversation_text=conv.all_text,
        render_error=error_response,
    )
    if failure is not None:
        return failure
    reply = plan_reply(conv, id_prefix="toolu_emu")
    if body.get("stream"):
        return sse_response(stream_events(conv, reply))
    return JSONResponse(message(conv, reply))
