"""The checks every emulated provider call passes before it is answered.

Why it exists: authentication, the rate limiter and fault injection behave identically for all
providers except for the error body, so the order (auth, rate limit, fault) lives here once
and each provider only supplies an ``ErrorRenderer`` for its own error shape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from emulators.http.faults import FAULT_HEADER, FaultSpecError
from emulators.http.runtime import EmulatorRuntime

__all__ = [
    "DEFAULT_MESSAGES",
    "ErrorRenderer",
    "bearer_token",
    "guard",
    "read_json_body",
    "sse",
    "sse_response",
]

# status -> message; a provider's renderer may replace the status (Anthropic turns 503 to 529).
ErrorRenderer = Callable[[int, str], Response]

DEFAULT_MESSAGES = {
    400: "Invalid request (emulated fault).",
    401: "Invalid or missing API key.",
    403: "Permission denied for this resource.",
    404: "The requested model was not found.",
    429: "Rate limit exceeded. Please retry after a short wait.",
    500: "Internal server error.",
    502: "Bad gateway.",
    503: "The model is overloaded. Please try again later.",
    529: "Overloaded.",
}


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def read_json_body(request: Request, runtime: EmulatorRuntime) -> object:
    """The parsed JSON body (None when it is not JSON), recording the call and its model."""
    try:
        body: object = json.loads(await request.body())
    except ValueError:
        body = None
    model = body.get("model") if isinstance(body, dict) else None
    runtime.record(request.url.path, model if isinstance(model, str) else None)
    return body


async def guard(  # noqa: PLR0911 - one early return per check reads as the spec
    request: Request,
    runtime: EmulatorRuntime,
    *,
    key: str | None,
    conversation_text: str,
    render_error: ErrorRenderer,
) -> Response | None:
    """Return the error response this request must get, or None to answer it normally."""
    runtime.record_key(key)
    runtime.record_traceparent(request.headers.get("traceparent"))
    if not runtime.key_allowed(key):
        return render_error(401, DEFAULT_MESSAGES[401])
    retry_after = runtime.take_rate_token()
    if retry_after is not None:
        runtime.faults_served += 1
        return _with_retry_after(render_error(429, DEFAULT_MESSAGES[429]), retry_after)
    try:
        spec = runtime.select_fault(request.headers.get(FAULT_HEADER), conversation_text)
    except FaultSpecError as exc:
        return render_error(400, str(exc))
    if spec is None:
        return None
    if spec.kind == "latency":
        await asyncio.sleep(spec.latency_ms / 1000)
        return None
    runtime.faults_served += 1
    if spec.kind == "hang":
        await _hang(request, runtime)
        return render_error(500, "The request hung and was abandoned.")
    response = render_error(spec.status, DEFAULT_MESSAGES[spec.status])
    if spec.status == 429 and spec.retry_after > 0:
        return _with_retry_after(response, spec.retry_after)
    return response


def _with_retry_after(response: Response, seconds: int) -> Response:
    response.headers["retry-after"] = str(seconds)
    return response


async def _hang(request: Request, runtime: EmulatorRuntime) -> None:
    # Whichever comes first: the long sleep, the client going away, or the server stopping.
    waiters = [
        asyncio.ensure_future(asyncio.sleep(runtime.hang_seconds)),
        asyncio.ensure_future(_disconnected(request)),
        asyncio.ensure_future(runtime.stopping.wait()),
    ]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next ASGI message can only be the disconnect.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def sse(data: object, event: str | None = None) -> str:
    """One server-sent event; compact JSON like the real APIs."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n"


def sse_response(events: Iterable[str]) -> StreamingResponse:
    return StreamingResponse(
        iter(list(events)),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache"},
    )
