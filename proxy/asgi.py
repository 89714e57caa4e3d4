"""Small ASGI pieces the gateway's own routes share: read a body (within a size limit),
replay it, authenticate, answer JSON or an error, notice a disconnect, and answer the
gateway's own failures without showing their insides.

Why it exists: the chat fast path and the media routes are both ASGI wrappers ahead of
LiteLLM's app, and need the same few primitives, written once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import structlog

from core.redact import Redactor
from proxy.accounting import current_ledger
from proxy.auth import STATE_KEY
from proxy.errors import (
    ExternalServiceError,
    InternalError,
    InvalidApiKeyError,
    InvalidRequestError,
    RequestTooLargeError,
)
from proxy.upstream import without_internals

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "authenticate",
    "guarded",
    "header",
    "limited",
    "read_body",
    "replay",
    "send_error",
    "send_json",
    "unless_disconnected",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_MAX_MESSAGE = 300
_FRAMES = 6


def _check_length(scope: Scope, max_bytes: int) -> None:
    declared = header(scope, b"content-length")
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise InvalidRequestError("the Content-Length header is not a number") from None
    if size > max_bytes:
        raise RequestTooLargeError(max_bytes)


async def read_body(
    receive: Receive, *, scope: Scope | None = None, max_bytes: int | None = None
) -> bytes:
    """The whole request body; with `max_bytes`, a `RequestTooLargeError` as soon as the
    declared length (from `scope`) or the bytes received so far exceed it."""
    if max_bytes is not None and scope is not None:
        _check_length(scope, max_bytes)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise RequestTooLargeError(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def limited(scope: Scope, receive: Receive, max_bytes: int | None) -> Receive:
    """A receive for code that reads the body itself (a multipart form): it raises
    `RequestTooLargeError` once the declared length or the bytes so far exceed `max_bytes`
    (None: `receive` itself)."""
    if max_bytes is None:
        return receive
    size = 0
    checked = False

    async def bounded() -> Message:
        nonlocal size, checked
        if not checked:
            checked = True
            _check_length(scope, max_bytes)
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > max_bytes:
                raise RequestTooLargeError(max_bytes)
        return message

    return bounded


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands `body` to the next app once, then the real messages."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _disconnected(receive: Receive) -> None:
    # The body has been read, so the next message can only be `http.disconnect`.
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive, work: Awaitable[None]) -> bool:
    """Run `work` to its end, or cancel it when the client disconnects first; True when it
    was abandoned."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        abandoned = not task.done()
        for pending in (task, watcher):
            pending.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if not abandoned:
        task.result()
    return abandoned


async def authenticate(scope: Scope) -> str | None:
    """The user whose keys pay, decided exactly as the chat fast path decides it (whose
    authenticator it leaves in the scope's state)."""
    authenticator = (scope.get("state") or {}).get(STATE_KEY)
    if authenticator is None:
        raise InvalidApiKeyError("gateway authentication is not configured")
    headers = scope.get("headers", ())
    identity = await authenticator.authenticate_headers(headers)
    user: str | None = authenticator.acting_user(identity, headers)
    return user


async def send_error(send: Send, error: ExternalServiceError, redactor: Redactor) -> None:
    headers = [(k.encode(), v.encode()) for k, v in error.response_headers().items()]
    body = redactor.scrub_bytes(orjson.dumps(error.to_openai_body()))
    if (ledger := current_ledger()) is not None:
        # For the error metrics: the class the request was answered with.
        ledger.error_type = type(error).__name__
    await send_json(send, error.status_code, body, headers)


def _frames(exc: BaseException) -> list[str]:
    """Where `exc` was raised, as `module:function:line` (never a file path), innermost last."""
    found: list[str] = []
    trace = exc.__traceback__
    while trace is not None:
        frame = trace.tb_frame
        found.append(
            f"{frame.f_globals.get('__name__', '?')}:{frame.f_code.co_name}:{trace.tb_lineno}"
        )
        trace = trace.tb_next
    return found[-_FRAMES:]


async def guarded(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, redactor: Redactor
) -> None:
    """Run `app` for an HTTP request; an exception escaping it is logged with its detail
    (type, scrubbed message, frames) under a new correlation id, and answered 500 with only
    that id (body and `x-gateway-correlation-id`) while no answer has started."""
    started = False

    async def watched(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await app(scope, receive, watched)
    except Exception as exc:
        correlation_id = uuid.uuid4().hex
        structlog.get_logger("proxy.asgi").error(
            "internal_error",
            correlation_id=correlation_id,
            path=scope.get("path"),
            error_type=type(exc).__name__,
            error=redactor.scrub(without_internals(str(exc)))[:_MAX_MESSAGE],
            frames=_frames(exc),
            answered=started,
        )
        if not started:
            await send_error(send, InternalError(correlation_id), redactor)
