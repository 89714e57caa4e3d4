"""A real local HTTP server that answers with a test's function, for the clients of the proxy.

The function takes an `httpx.Request` and returns an `httpx.Response` (or a coroutine of one):
the shape tests script answers in. It is served by `aiohttp.web` on a free local port, so the
client under test makes real connections and parses real HTTP.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from aiohttp import web

__all__ = ["Answer", "serving"]

Answer = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]

# Framing the server sets itself from the body it sends.
_FRAMING = {"content-length", "transfer-encoding"}


@asynccontextmanager
async def serving(answer: Answer) -> AsyncIterator[str]:
    """Serve `answer` for every method and path; yields the server's base URL."""

    async def handle(request: web.Request) -> web.Response:
        asked = httpx.Request(
            request.method,
            str(request.url),
            headers=list(request.headers.items()),
            content=await request.read(),
        )
        result = answer(asked)
        response = await result if inspect.isawaitable(result) else result
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _FRAMING]
        return web.Response(status=response.status_code, body=response.read(), headers=headers)

    # Uploads (training archives, video stills) are larger than aiohttp's 1 MiB default.
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", handle)
    # A handler still waiting at the end (a test of the client's timeout) is not waited for.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
