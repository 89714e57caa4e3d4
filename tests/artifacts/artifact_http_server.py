"""A tiny real HTTP/1.1 server on 127.0.0.1 for the fetch tests: each route is a canned
response, and every request's path and headers are recorded, so a test can show what reached
the server (the Host header of a pinned connection) and what never did."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

__all__ = ["Route", "TinyServer", "tiny_server"]


@dataclass(frozen=True)
class Route:
    """A canned answer; `body_size` streams that many bytes with no Content-Length."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    body_size: int | None = None
    hang: bool = False  # read until the client gives up, never answering


@dataclass
class TinyServer:
    port: int
    routes: Mapping[str, Route]
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, path: str, *, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


async def _handle(
    server: TinyServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    task = asyncio.current_task()
    if task is not None:
        server.handlers.add(task)
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
        return
    request_line, *lines = head.decode("latin-1").split("\r\n")
    path = request_line.split(" ")[1]
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines if line)
    }
    server.requests.append((path, headers))
    route = server.routes.get(path, Route(status=404, body=b"no such route"))
    if route.hang:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.close()
        return
    reply = [f"HTTP/1.1 {route.status} X", "Connection: close"]
    reply += [f"{name}: {value}" for name, value in route.headers]
    if route.body_size is None:
        reply.append(f"Content-Length: {len(route.body)}")
    writer.write(("\r\n".join(reply) + "\r\n\r\n").encode("latin-1"))
    with contextlib.suppress(ConnectionError):
        if route.body_size is None:
            writer.write(route.body)
        else:
            chunk = b"x" * 65536
            for start in range(0, route.body_size, len(chunk)):
                writer.write(chunk[: route.body_size - start])
                await writer.drain()
        await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()


@contextlib.asynccontextmanager
async def tiny_server(
    routes: Mapping[str, Route],
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[TinyServer]:
    """Serve `routes` on an ephemeral port of 127.0.0.1 until the block ends."""
    state = TinyServer(port=0, routes=routes)
    if ssl_context is not None:
        # Records the TLS server name each client asked for.
        ssl_context.sni_callback = lambda _sock, name, _ctx: state.server_names.append(name)
    server = await asyncio.start_server(
        lambda r, w: _handle(state, r, w), "127.0.0.1", 0, ssl=ssl_context
    )
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
        # Python 3.11's wait_closed does not wait for connection handlers: finish them here
        # so no stream outlives the test's event loop.
        if state.handlers:
            _, pending = await asyncio.wait(state.handlers, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
