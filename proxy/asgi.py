"""Small ASGI pieces the gateway's own routes share: read a body, replay it, authenticate,
answer JSON or an error, notice a disconnect.

Why it exists: the chat fast path and the media routes are both ASGI wrappers ahead of
LiteLLM's app, and need the same few primitives, written once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from core.redact import Redactor
from proxy.auth import STATE_KEY
from proxy.errors import ExternalServiceError, InvalidApiKeyError

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "authenticate",
    "header",
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


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


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
    await send_json(send, error.status_code, body, headers)
