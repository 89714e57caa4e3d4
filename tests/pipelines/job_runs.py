"""How the training and video tests run a job kind: a request with fresh ids, and one request
handled by a handler started for it (the resources and proxies they share are `jobs_support`)."""

from __future__ import annotations

import uuid
from typing import Any, Protocol, TypeVar

from jobs_support import Progress

from consumers.handlers import HandlerContext
from schemas import Request

__all__ = ["Handles", "fresh_request", "handled"]

Req = TypeVar("Req", bound=Request)
Req_contra = TypeVar("Req_contra", bound=Request, contravariant=True)
Out = TypeVar("Out")
Out_co = TypeVar("Out_co", covariant=True)


class Handles(Protocol[Req_contra, Out_co]):
    """A handler with a lifespan: started, asked, stopped."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def handle(self, event: Req_contra, ctx: HandlerContext) -> Out_co: ...


def fresh_request(kind: type[Req], **fields: Any) -> Req:
    """A `kind` request under a new event id and a new subject (`look-` and six hex digits)."""
    return kind(event_id=str(uuid.uuid4()), subject=f"look-{uuid.uuid4().hex[:6]}", **fields)


async def handled(handler: Handles[Req, Out], event: Req) -> Out:
    """`handler`'s answer to `event`: started for it, stopped after, its progress dropped."""
    await handler.start()
    try:
        return await handler.handle(event, Progress().ctx)
    finally:
        await handler.stop()
