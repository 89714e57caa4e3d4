"""The Vertex AI emulator app: Gemini generateContent (text, vision, image output and
multi-image edits), the virtual try-on ``:predict``, and the OAuth token endpoint.

Why it exists: the gateway's Vertex plugin, LiteLLM's ``vertex_ai/`` path and the official
google-genai SDK in Vertex mode need an upstream that authenticates like Google (service-account
JWT assertions exchanged for bearer tokens), answers image requests with real images that
show their inputs were used, refuses on demand for every block reason, and fails on demand
(``emulators.http.faults``). Routes, under ``/v1/`` and ``/v1beta1/`` (google-genai's default):

- ``POST /{version}/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent``
  and ``:streamGenerateContent`` (``?alt=sse`` for SSE, else a JSON array);
- ``POST .../models/{virtual-try-on-001 | virtual-try-on-preview-08-04}:predict``;
- ``POST /token``: the service account's ``token_uri`` (``emulators.vertex.tokens``).

Checks in the real service's order: a valid bearer token (401 UNAUTHENTICATED), the project
(403 PERMISSION_DENIED when ``allowed_projects`` is set), the model (404 NOT_FOUND), the body
(400 INVALID_ARGUMENT), then rate limit and faults; block markers (``emulators.vertex.safety``)
decide refusals last. Errors use Google's ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.gemini.render import error_response
from emulators.http.content import plan_reply
from emulators.http.control import build_app
from emulators.http.errors import BadRequestBody
from emulators.http.pipeline import bearer_token, guard, sse, sse_response
from emulators.http.runtime import EmulatorSettings
from emulators.vertex import render
from emulators.vertex.calls import summarise
from emulators.vertex.control import CONTROL_ROUTES
from emulators.vertex.images import output_size, paint
from emulators.vertex.runtime import VertexRuntime
from emulators.vertex.safety import Block, blocks, find_block
from emulators.vertex.tokens import oauth_error
from emulators.vertex.wire import (
    TRY_ON_MODELS,
    GenerateRequest,
    TryOnRequest,
    parse_generate,
    parse_try_on,
)

__all__ = ["create_app"]

_VERSIONS = ("v1", "v1beta1")
_METHODS = ("generateContent", "streamGenerateContent", "predict")
_GEMINI_ON_PREDICT = (
    "Gemini cannot be accessed through Vertex Predict/RawPredict API. Please follow "
    "https://cloud.google.com/vertex-ai/docs/generative-ai/start/quickstarts/quickstart-multimodal"
    " for Gemini usage."
)


def create_app(settings: EmulatorSettings | None = None) -> Starlette:
    runtime = VertexRuntime(settings or EmulatorSettings())
    model = "/{version}/projects/{project}/locations/{location}/publishers/google/models/{target}"
    routes = [
        *CONTROL_ROUTES,
        Route("/token", _token, methods=["POST"]),
        Route(model, _model_call, methods=["POST"]),
    ]
    return build_app(routes, runtime)


def _runtime(request: Request) -> VertexRuntime:
    runtime: VertexRuntime = request.app.state.emulator_runtime
    return runtime


async def _token(request: Request) -> Response:
    # google-auth posts application/x-www-form-urlencoded; parsed here without a multipart lib.
    fields = dict(urllib.parse.parse_qsl((await request.body()).decode("utf-8", "replace")))
    own = f"{str(request.base_url).rstrip('/')}/token"
    try:
        return JSONResponse(_runtime(request).tokens.mint(fields, own))
    except BadRequestBody as exc:
        return JSONResponse(oauth_error(exc), status_code=400)


async def _model_call(request: Request) -> Response:
    runtime = _runtime(request)
    path = dict(request.path_params)
    model, _, method = path["target"].partition(":")
    runtime.record(request.url.path, model or None)
    if path["version"] not in _VERSIONS or method not in _METHODS or not model:
        return error_response(404, f"Method not found: {path['version']}/...:{method}")
    try:
        body: Any = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return error_response(400, "Invalid JSON payload received. Expected a JSON object.")
    call = summarise(method, path, model, body)
    runtime.calls.append(call)
    try:
        response = await _serve(
            request, runtime, path=path, model=model, method=method, body=body, call=call
        )
    except BadRequestBody as exc:
        response = error_response(400, str(exc))
    call["status"] = response.status_code
    if response.status_code != 200:
        call["outcome"] = "error"
    return response


async def _serve(  # noqa: PLR0911 - one early return per check, in the service's order
    request: Request,
    runtime: VertexRuntime,
    *,
    path: dict[str, str],
    model: str,
    method: str,
    body: dict[str, Any],
    call: dict[str, Any],
) -> Response:
    token = bearer_token(request)
    if not runtime.key_allowed(token):
        runtime.unauthenticated += 1
        return error_response(401, render.UNAUTHENTICATED)
    where = {"project": path["project"], "location": path["location"], "model": model}
    if runtime.allowed_projects is not None and path["project"] not in runtime.allowed_projects:
        return error_response(403, render.FORBIDDEN.format(**where))
    try_on = model in TRY_ON_MODELS
    if method == "predict" and model.startswith("gemini-"):
        return error_response(400, _GEMINI_ON_PREDICT)
    if (method == "predict") != try_on or not (try_on or model.startswith("gemini-")):
        return error_response(404, render.NOT_FOUND.format(**where))
    parsed: GenerateRequest | TryOnRequest
    if try_on:
        parsed = parse_try_on(model, body)
        text = parsed.prompt
    else:
        parsed = parse_generate(model, body, path["version"])
        text = parsed.conversation.all_text
    text = f"{runtime.take_forced()}\n{text}"
    failure = await guard(
        request, runtime, key=token, conversation_text=text, render_error=error_response
    )
    if failure is not None:
        return failure
    block = find_block(text)
    if isinstance(parsed, TryOnRequest):
        return await _try_on(parsed, block, call)
    return await _generate(request, parsed, block, call, stream=method != "generateContent")


async def _generate(
    request: Request,
    parsed: GenerateRequest,
    block: Block | None,
    call: dict[str, Any],
    *,
    stream: bool,
) -> Response:
    reply = plan_reply(parsed.conversation, id_prefix="fc_")
    body: dict[str, Any] | None = None
    if block is not None and block.kind != "rai" and blocks(block, parsed.thresholds):
        if block.kind == "prompt":
            body = render.prompt_blocked(parsed, block, reply.input_tokens)
            call["outcome"] = f"blocked:{block.reason}"
        else:
            body = render.finish_blocked(parsed, block, reply.input_tokens)
            call["outcome"] = f"finish:{block.reason}"
    if body is None:
        call["outcome"] = "ok"
        images = await asyncio.to_thread(_paint_generation, parsed) if parsed.wants_image else []
        if not stream:
            return JSONResponse(render.answer(parsed, reply, images))
        chunks = render.answer_chunks(parsed, reply, images)
    else:
        if not stream:
            return JSONResponse(body)
        chunks = [body]
    if request.query_params.get("alt") == "sse":
        return sse_response(sse(chunk).replace("\n\n", "\r\n\r\n") for chunk in chunks)
    return JSONResponse(chunks)


def _paint_generation(parsed: GenerateRequest) -> list[bytes]:
    decoded = [image.image for image in parsed.images if image.image is not None]
    person, garments = (decoded[0], decoded[1:]) if decoded else (None, [])
    ratio = parsed.aspect_ratio or (person.size if person is not None else (1, 1))
    size = output_size(ratio, parsed.image_size)
    key = json.dumps(
        [
            parsed.model,
            parsed.conversation.all_text,
            [image.sha256 for image in parsed.images],
            parsed.seed,
            ratio,
            parsed.image_size,
        ]
    )
    return [
        paint(
            f"{key}|{index}",
            size,
            parsed.output_mime,
            person=person,
            garments=garments,
            quality=parsed.quality,
        )
        for index in range(parsed.candidate_count)
    ]


async def _try_on(parsed: TryOnRequest, block: Block | None, call: dict[str, Any]) -> Response:
    if block is not None and block.kind == "rai" and parsed.safety_setting != "block_none":
        call["outcome"] = "rai"
        body = render.predictions(
            [], parsed.output_mime, filtered=block.reason, count=parsed.sample_count
        )
        return JSONResponse(body)
    call["outcome"] = "ok"
    images = await asyncio.to_thread(_paint_try_on, parsed)
    return JSONResponse(render.predictions(images, parsed.output_mime))


def _paint_try_on(parsed: TryOnRequest) -> list[bytes]:
    # The output keeps the person photo's shape, within the 1K pixel budget.
    size = output_size(parsed.person.size, "1K")
    key = json.dumps([parsed.model, parsed.input_digest, parsed.prompt, parsed.seed])
    return [
        paint(
            f"{key}|{index}",
            size,
            parsed.output_mime,
            person=parsed.person,
            garments=parsed.products,
            quality=parsed.quality,
        )
        for index in range(parsed.sample_count)
    ]
