"""The Gemini emulator app: Google AI and Vertex AI generateContent / streamGenerateContent.

Why it exists: the proxy and its tests need a Gemini upstream that google-genai accepts
unchanged, answers deterministically and fails on demand. Routes:

- ``POST /{v1beta|v1|v1alpha}/models/{model}:generateContent`` (Google AI, ``x-goog-api-key``
  or ``?key=``) and ``:streamGenerateContent`` (``?alt=sse`` for SSE, else a JSON array);
  the same under ``/models/...`` with no version prefix;
- ``POST /{v1|v1beta1}/projects/{p}/locations/{loc}/publishers/google/models/{model}:...``
  (Vertex AI, ``Authorization: Bearer``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.gemini.render import error_response, response, stream_chunks
from emulators.gemini.rules import MAX_BODY_BYTES, candidate_count, check_context, check_request
from emulators.gemini.wire import BadRequestBody, parse_request
from emulators.http.checks import ValidationFailure
from emulators.http.content import plan_reply
from emulators.http.control import build_app, runtime_of
from emulators.http.pipeline import bearer_token, guard, sse, sse_response
from emulators.http.runtime import EmulatorRuntime, EmulatorSettings

__all__ = ["create_app"]

_ACTIONS = ("generateContent", "streamGenerateContent")


def create_app(settings: EmulatorSettings | None = None) -> Starlette:
    runtime = EmulatorRuntime(settings or EmulatorSettings())
    vertex = "/{version}/projects/{project}/locations/{location}/publishers/google/models/{target}"
    routes = [
        # The model listing: the cheapest authenticated call, used to validate keys.
        Route("/{version}/models", _models, methods=["GET"]),
        Route("/{version}/models/{target}", _generate, methods=["POST"]),
        # Clients given a custom base URL (LiteLLM's api_base) append /models/... directly.
        Route("/models/{target}", _generate, methods=["POST"]),
        Route(vertex, _generate, methods=["POST"]),
    ]
    return build_app(routes, runtime)


def _key(request: Request) -> str | None:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if key:
        return key.strip() or None
    return bearer_token(request)


async def _models(request: Request) -> Response:
    runtime = runtime_of(request)
    runtime.record(request.url.path, None)
    if not runtime.key_allowed(_key(request)):
        return error_response(400, "API key not valid. Please pass a valid API key.")
    models = [
        {
            "name": f"models/{name}",
            "displayName": name,
            "supportedGenerationMethods": list(_ACTIONS),
        }
        for name in ("gemini-2.5-flash", "gemini-2.0-flash", "gemini-flash-latest")
    ]
    return JSONResponse({"models": models})


# Each early return is one of the API's checks, in the order the real service applies them.
async def _generate(request: Request) -> Response:  # noqa: PLR0911
    runtime = runtime_of(request)
    model, _, action = str(request.path_params["target"]).partition(":")
    runtime.record(request.url.path, model or None)
    if action not in _ACTIONS or not model:
        return error_response(404, f"Method not found: {action or 'missing action'}")
    if not runtime.key_allowed(_key(request)):
        return error_response(401, "Request is missing a valid API key or credentials.")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return error_response(
            400, f"Request payload size exceeds the limit: {MAX_BODY_BYTES} bytes."
        )
    try:
        body: Any = json.loads(raw)
        if not isinstance(body, dict):
            raise BadRequestBody("request body must be a JSON object")
        check_request(model, body)
        conv = parse_request(model, body)
        check_context(conv)
        conv = dataclasses.replace(conv, choices=candidate_count(body))
    except ValidationFailure as exc:
        return error_response(exc.status, str(exc))
    except (ValueError, AttributeError, TypeError, KeyError) as exc:
        # BadRequestBody, bad JSON and fields of the wrong JSON type: 400 like the real API.
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
    reply = plan_reply(conv, id_prefix="fc_")
    if action == "generateContent":
        return JSONResponse(response(conv, reply))
    chunks = stream_chunks(conv, reply)
    if request.query_params.get("alt") == "sse":
        return sse_response(sse(chunk).replace("\n\n", "\r\n\r\n") for chunk in chunks)
    return JSONResponse(chunks)
