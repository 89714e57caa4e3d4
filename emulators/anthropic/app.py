"""The Anthropic Messages emulator app (``POST /v1/messages``, ``GET /v1/models``).

Why it exists: the proxy and its tests need an Anthropic upstream that the official SDK
accepts unchanged, answers deterministically and fails on demand.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.anthropic.render import error_response, message, stream_events
from emulators.anthropic.rules import check_context, check_request
from emulators.anthropic.wire import BadRequestBody, parse_request
from emulators.http.checks import ValidationFailure
from emulators.http.content import plan_reply
from emulators.http.control import build_app, runtime_of
from emulators.http.pipeline import bearer_token, guard, read_json_body, sse_response
from emulators.http.runtime import EmulatorRuntime, EmulatorSettings

__all__ = ["DEFAULT_MODELS", "create_app"]

# Listed by GET /v1/models; any other model name is still accepted on /v1/messages.
DEFAULT_MODELS = ("claude-sonnet-4-5", "claude-sonnet-4", "claude-haiku-4-5", "claude-opus-4-1")
# The Messages API's request size limit; larger bodies get 413 request_too_large.
_MAX_BODY_BYTES = 32 * 1024 * 1024


def create_app(settings: EmulatorSettings | None = None) -> Starlette:
    runtime = EmulatorRuntime(settings or EmulatorSettings())
    routes = [
        Route("/v1/messages", _messages, methods=["POST"]),
        Route("/v1/models", _models, methods=["GET"]),
    ]
    return build_app(routes, runtime)


def _key(request: Request) -> str | None:
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    return bearer_token(request)


# Each early return is one of the API's checks, in the order the real service applies them.
async def _messages(request: Request) -> Response:  # noqa: PLR0911
    runtime = runtime_of(request)
    body: Any = await read_json_body(request, runtime)
    if not runtime.key_allowed(_key(request)):
        return error_response(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return error_response(400, "anthropic-version: header is required")
    if len(await request.body()) > _MAX_BODY_BYTES:
        return error_response(413, "Request exceeds the maximum size")
    if not isinstance(body, dict):
        return error_response(400, "request body is not valid JSON")
    try:
        check_request(body)
        conv = parse_request(body)
        check_context(conv, request.headers.get("anthropic-beta", ""))
    except ValidationFailure as exc:
        return error_response(exc.status, str(exc))
    except (BadRequestBody, AttributeError, TypeError, KeyError) as exc:
        # Fields of the wrong JSON type are answered with 400 like the real API, never 500.
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


async def _models(request: Request) -> Response:
    runtime = runtime_of(request)
    runtime.record(request.url.path, None)
    if not runtime.key_allowed(_key(request)):
        return error_response(401, "invalid x-api-key")
    data = [
        {
            "type": "model",
            "id": name,
            "display_name": name.replace("-", " ").title(),
            "created_at": "2025-01-01T00:00:00Z",
        }
        for name in DEFAULT_MODELS
    ]
    body = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return JSONResponse(body)
