"""The Fal emulator app: the queue protocol (submit, status, status stream, result, cancel) over
the Flux models and LoRA training, storage uploads (token, then CDN upload), and the files.

Why it exists: the gateway's Fal plugin and the official fal-client need an upstream that speaks
Fal's queue exactly (status, result and cancel URLs returned by submit and used verbatim, 202
until done, ``logs`` always present), answers with real images, and fails on demand per queue
operation (``POST /_emulator/fal/faults {"operation": "status", "spec": "503x2"}``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from emulators.fal.control import control_config, control_fault, control_stats
from emulators.fal.models import SERVED_MODELS, run_model
from emulators.fal.queue import FalQueue, Job, Operation, QueueTimings
from emulators.fal.render import (
    error_response,
    log_entry,
    status_body,
    validation_response,
)
from emulators.fal.webhooks import WebhookSender
from emulators.http.control import build_app
from emulators.http.faults import FaultSpec
from emulators.http.pipeline import DEFAULT_MESSAGES, guard, read_json_body, sse
from emulators.http.runtime import EmulatorRuntime, EmulatorSettings

__all__ = ["FalRuntime", "create_app"]

_KEEPALIVE_S = 15.0


class FalRuntime(EmulatorRuntime):
    """The shared emulator runtime plus the queue; ``reset`` empties both."""

    def __init__(self, settings: EmulatorSettings, timings: QueueTimings | None = None) -> None:
        self.queue = FalQueue(timings)
        self.webhooks = WebhookSender()
        super().__init__(settings)

    def reset(self) -> None:
        super().reset()
        self.queue.reset()
        for task in list(self.webhooks.tasks):
            task.cancel()
        self.webhooks.deliveries.clear()
        self.webhooks.retry_s = 0.2


def create_app(settings: EmulatorSettings | None = None) -> Starlette:
    runtime = FalRuntime(settings or EmulatorSettings())
    requests = "/{owner}/{app}/requests/{request_id}"
    routes = [
        Route("/_emulator/fal/config", control_config, methods=["POST"]),
        Route("/_emulator/fal/faults", control_fault, methods=["POST"]),
        Route("/_emulator/fal/stats", control_stats, methods=["GET"]),
        Route("/.well-known/jwks.json", _jwks, methods=["GET"]),
        Route("/files/{request_id}/{name}", _file, methods=["GET"]),
        Route("/storage/auth/token", _storage_token, methods=["POST"]),
        Route("/files/upload", _upload, methods=["POST"]),
        Route(requests + "/status/stream", _status_stream, methods=["GET"]),
        Route(requests + "/status", _status, methods=["GET"]),
        Route(requests + "/cancel", _cancel, methods=["PUT"]),
        Route(requests, _result, methods=["GET"]),
        # The synchronous endpoint (fal.run): FAL_RUN_HOST=<host:port>/run, or api_base .../run.
        Route("/run/{owner}/{app}", _run, methods=["POST"]),
        Route("/run/{owner}/{app}/{path:path}", _run, methods=["POST"]),
        Route("/{owner}/{app}", _submit, methods=["POST"]),
        Route("/{owner}/{app}/{path:path}", _submit, methods=["POST"]),
    ]
    return build_app(routes, runtime)


def _runtime(request: Request) -> FalRuntime:
    runtime: FalRuntime = request.app.state.emulator_runtime
    return runtime


def fal_key(request: Request) -> str | None:
    """The key of ``Authorization: Key <key>`` (fal-client's scheme; Bearer is accepted too)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() in ("key", "bearer") and token.strip() else None


def _render(status: int, message: str) -> Response:
    return error_response(status, message)


async def _checks(request: Request, operation: Operation, text: str = "") -> Response | None:
    """Per-operation faults first, then the shared auth / rate limit / fault pipeline."""
    runtime = _runtime(request)
    spec = runtime.queue.take_fault(operation)
    if spec is not None and (failure := await _apply(spec, runtime)) is not None:
        return failure
    return await guard(
        request, runtime, key=fal_key(request), conversation_text=text, render_error=_render
    )


async def _apply(spec: FaultSpec, runtime: FalRuntime) -> Response | None:
    if spec.kind == "latency":
        await asyncio.sleep(spec.latency_ms / 1000)
        return None
    runtime.faults_served += 1
    if spec.kind == "hang":
        stop = asyncio.ensure_future(runtime.stopping.wait())
        try:
            await asyncio.wait([stop], timeout=runtime.hang_seconds)
        finally:
            stop.cancel()
        return error_response(504, "The request hung and was abandoned.")
    response = error_response(spec.status, DEFAULT_MESSAGES[spec.status])
    if spec.status == 429 and spec.retry_after > 0:
        response.headers["retry-after"] = str(spec.retry_after)
    return response


def _urls(request: Request, job: Job) -> dict[str, str]:
    base = f"{str(request.base_url).rstrip('/')}/{job.app}/requests/{job.request_id}"
    return {
        "request_id": job.request_id,
        "response_url": base,
        "status_url": base + "/status",
        "cancel_url": base + "/cancel",
    }


def _job(request: Request) -> Job | None:
    job = _runtime(request).queue.jobs.get(request.path_params["request_id"])
    app = f"{request.path_params['owner']}/{request.path_params['app']}"
    return job if job is not None and job.app == app else None


async def _submit(request: Request) -> Response:
    runtime = _runtime(request)
    owner, app = request.path_params["owner"], request.path_params["app"]
    sub = request.path_params.get("path", "")
    endpoint = f"{owner}/{app}" + (f"/{sub}" if sub else "")
    body: Any = await read_json_body(request, runtime)
    runtime.by_model[endpoint] += 1
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if (failure := await _checks(request, "submit", str(prompt or ""))) is not None:
        return failure
    if endpoint not in SERVED_MODELS:
        return JSONResponse({"detail": f"Application '{endpoint}' not found"}, status_code=404)
    request_id = str(uuid.uuid4())
    # Computed before the job is queued, so its clock starts when the client hears of it.
    outcome = run_model(
        endpoint, body, str(request.base_url).rstrip("/"), request_id, runtime.queue
    )
    job = runtime.queue.add(
        f"{owner}/{app}",
        outcome.result,
        outcome.files,
        run_s=outcome.run_s,
        webhook_url=request.query_params.get("fal_webhook"),
        request_id=request_id,
        steps=outcome.steps,
    )
    if job.webhook_url:
        runtime.webhooks.schedule(job.webhook_url, job.request_id, job.ends, _callback(job))
    now = runtime.queue.now()
    urls = _urls(request, job)
    reply = status_body(
        "IN_QUEUE",
        position=runtime.queue.position(job, now),
        logs=None,
        urls=urls,
        inference_s=None,
    )
    reply["gateway_request_id"] = job.request_id
    return JSONResponse(reply, headers={"x-fal-request-id": job.request_id})


def _status_of(request: Request, job: Job, with_logs: bool) -> dict[str, Any]:
    queue = _runtime(request).queue
    now = queue.now()
    state = job.state(now)
    logs = [log_entry(m, t) for t, m in job.logs(now)] if with_logs else None
    cancelled = job.cancelled_at is not None
    return status_body(
        state,
        position=queue.position(job, now),
        logs=logs,
        urls=_urls(request, job),
        inference_s=None if cancelled else round(job.ends - job.starts, 3),
        error="Request was cancelled" if cancelled else None,
        error_type="request_cancelled" if cancelled else None,
    )


def _wants_logs(request: Request) -> bool:
    return request.query_params.get("logs", "").lower() in ("1", "true")


def _not_found(request_id: str) -> Response:
    return JSONResponse({"detail": f"Request {request_id!r} not found"}, status_code=404)


async def _status(request: Request) -> Response:
    _runtime(request).record(request.url.path.rsplit("/", 3)[0] + "/status", None)
    if (failure := await _checks(request, "status")) is not None:
        return failure
    job = _job(request)
    if job is None:
        return _not_found(request.path_params["request_id"])
    body = _status_of(request, job, _wants_logs(request))
    return JSONResponse(body, status_code=200 if body["status"] == "COMPLETED" else 202)


async def _status_stream(request: Request) -> Response:
    _runtime(request).record("status/stream", None)
    if (failure := await _checks(request, "status")) is not None:
        return failure
    job = _job(request)
    if job is None:
        return _not_found(request.path_params["request_id"])
    return StreamingResponse(
        _events(request, job, _wants_logs(request)),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache"},
    )


async def _events(request: Request, job: Job, with_logs: bool) -> AsyncIterator[str]:
    """One event per change (state or a new log line), sent the moment it happens; closed
    after COMPLETED; a comment keeps an idle stream open."""
    queue = _runtime(request).queue
    last: tuple[str, int] | None = None
    while True:
        body = _status_of(request, job, with_logs)
        mark = (body["status"], len(job.logs(queue.now())))
        if mark != last:
            last = mark
            yield sse(body)
        if body["status"] == "COMPLETED":
            return
        now = queue.now()
        upcoming = [t for t, _ in job.logs(float("inf")) if t > now]
        change = job.next_change(now)
        wake = min([*upcoming, *([change] if change is not None else [])], default=now)
        wait = max(0.0, wake - now)
        if wait > _KEEPALIVE_S:
            await asyncio.sleep(_KEEPALIVE_S)
            yield ": keep-alive\n\n"
        else:
            await asyncio.sleep(wait)


async def _result(request: Request) -> Response:
    _runtime(request).record("result", None)
    if (failure := await _checks(request, "result")) is not None:
        return failure
    job = _job(request)
    if job is None:
        return _not_found(request.path_params["request_id"])
    state = job.state(_runtime(request).queue.now())
    if state != "COMPLETED":
        return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
    if job.cancelled_at is not None:
        return JSONResponse({"detail": "Request was cancelled"}, status_code=400)
    status, body = job.result
    if status == 422:
        return validation_response(body["detail"])
    return JSONResponse(body, status_code=status, headers={"x-fal-request-id": job.request_id})


async def _run(request: Request) -> Response:
    """The synchronous endpoint: the model's answer once it has run, no queue."""
    runtime = _runtime(request)
    owner, app = request.path_params["owner"], request.path_params["app"]
    sub = request.path_params.get("path", "")
    endpoint = f"{owner}/{app}" + (f"/{sub}" if sub else "")
    body: Any = await read_json_body(request, runtime)
    runtime.by_model[endpoint] += 1
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if (failure := await _checks(request, "submit", str(prompt or ""))) is not None:
        return failure
    if endpoint not in SERVED_MODELS:
        return JSONResponse({"detail": f"Application '{endpoint}' not found"}, status_code=404)
    request_id = str(uuid.uuid4())
    base = str(request.base_url).rstrip("/")
    outcome = run_model(endpoint, body, base, request_id, runtime.queue)
    # Kept as a finished job so that the files it answers with can be fetched.
    job = runtime.queue.add(
        f"{owner}/{app}", outcome.result, outcome.files, run_s=0.0, request_id=request_id
    )
    job.submitted = job.starts = job.ends = runtime.queue.now()
    status, result = outcome.result
    if status == 422:
        return validation_response(result["detail"])
    wait = runtime.queue.timings.training_s if outcome.steps else runtime.queue.timings.run_s
    await asyncio.sleep(wait)
    return JSONResponse(result, headers={"x-fal-request-id": request_id})


def _callback(job: Job) -> Callable[[], tuple[int, Any]]:
    def payload() -> tuple[int, Any]:
        if job.cancelled_at is not None:
            return 400, {"detail": "Request was cancelled"}
        return job.result

    return payload


async def _jwks(request: Request) -> Response:
    return JSONResponse(_runtime(request).webhooks.jwks())


async def _cancel(request: Request) -> Response:
    _runtime(request).record("cancel", None)
    if (failure := await _checks(request, "cancel")) is not None:
        return failure
    job = _job(request)
    if job is None:
        return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
    if not _runtime(request).queue.cancel(job):
        return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
    return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)


async def _file(request: Request) -> Response:
    found = _runtime(request).queue.file(
        request.path_params["request_id"], request.path_params["name"]
    )
    if found is None:
        return JSONResponse({"detail": "File not found"}, status_code=404)
    return Response(found[1], media_type=found[0])


async def _storage_token(request: Request) -> Response:
    """fal-client's first upload step: a short-lived CDN token for this emulator's uploads."""
    runtime = _runtime(request)
    runtime.record("storage/auth/token", None)
    if not runtime.key_allowed(fal_key(request)):
        return error_response(401, DEFAULT_MESSAGES[401])
    token = uuid.uuid4().hex
    runtime.queue.tokens.add(token)
    expires = datetime.now(UTC) + timedelta(hours=1)
    return JSONResponse(
        {
            "token": token,
            "token_type": "Bearer",
            "base_url": str(request.base_url).rstrip("/"),
            "expires_at": expires.isoformat(),
        }
    )


async def _upload(request: Request) -> Response:
    """The CDN upload: raw bytes under a token from /storage/auth/token; answers the file's URL."""
    runtime = _runtime(request)
    runtime.record("files/upload", None)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token not in runtime.queue.tokens:
        return error_response(401, "Invalid or expired upload token.")
    name = request.headers.get("x-fal-file-name") or "upload.bin"
    kind = request.headers.get("content-type", "application/octet-stream")
    key = runtime.queue.store_upload(name.rsplit("/", 1)[-1], kind, await request.body())
    return JSONResponse({"access_url": f"{str(request.base_url).rstrip('/')}/files/{key}"})
