"""The OpenAI Chat Completions emulator app (``POST /v1/chat/completions``, ``GET /v1/models``).

Why it exists: the proxy and its tests need an OpenAI upstream that the official SDK accepts
unchanged, answers deterministically and fails on demand.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.http.checks import ValidationFailure
from emulators.http.content import plan_reply
from emulators.http.control import build_app, runtime_of
from emulators.http.pipeline import bearer_token, guard, read_json_body, sse, sse_response
from emulators.http.runtime import EmulatorRuntime, EmulatorSettings
from emulators.openai.render import completion, error_response, stream_events
from emulators.openai.rules import check_context, check_request
from emulators.openai.wire import BadRequestBody, parse_request

__all__ = ["DEFAULT_MODELS", "create_app"]

# Listed by GET /v1/models; any other model name is still accepted on completions.
DEFAULT_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini")


def create_app(settings: EmulatorSettings | None = None) -> Starlette:
    runtime = EmulatorRuntime(settings or EmulatorSettings())
    routes = [
        Route("/v1/chat/completions", _chat, methods=["POST"]),
        Route("/v1/models", _models, methods=["GET"]),
        Route("/v1/models/{model}", _model, methods=["GET"]),
    ]
    return build_app(routes, runtime)


# Each early return is one of the API's checks, in the order the real service applies them.
async def _chat(request: Request) -> Response:  # noqa: PLR0911
    runtime = runtime_of(request)
    body: Any = await read_json_body(request, runtime)
    if not runtime.key_allowed(bearer_token(request)):
        return error_response(401, "Incorrect API key provided.")
    if not isinstance(body, dict):
        return error_response(400, "We could not parse the JSON body of your request.")
    try:
        check_request(body)
        conv = parse_request(body)
        check_context(conv)
    except ValidationFailure as exc:
        return error_response(exc.status, str(exc), exc.param, exc.code)
    except (BadRequestBody, AttributeError, TypeError, KeyError) as exc:
        # Fields of the wrong JSON type are answered with 400 like the real API, never 500.
        return error_response(400, str(exc), getattr(exc, "param", None))
    failure = await guard(
        request,
        runtime,
        key=bearer_token(request),
        conversation_text=conv.all_text,
        render_error=error_response,
    )
    if failure is not None:
        return failure
    reply = plan_reply(conv, id_prefix="call_")
    if not body.get("stream"):
        return JSONResponse(completion(conv, reply))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    events = [sse(chunk) for chunk in stream_events(conv, reply, include_usage)]
    events.append(sse("[DONE]"))
    return sse_response(events)


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1700000000, "owned_by": "emulator"}


async def _models(request: Request) -> Response:
    runtime = runtime_of(request)
    runtime.record(request.url.path, None)
    if not runtime.key_allowed(bearer_token(request)):
        return error_response(401, "Incorrect API key provided.")
    return JSONResponse({"object": "list", "data": [_model_entry(m) for m in DEFAULT_MODELS]})


async def _model(request: Request) -> Response:
    runtime = runtime_of(request)
    runtime.record(request.url.path, None)
    if not runtime.key_allowed(bearer_token(request)):
        return error_response(401, "Incorrect API key provided.")
    return JSONResponse(_model_entry(request.path_params["model"]))
