"""A gateway fast path served in the test's own event loop, in front of tiny local upstreams.

Why not the session proxy: these tests need providers the emulators cannot play (one that
never answers and reports when its caller hung up, one that echoes the key it was sent back in
its 401), and a task routed to them. The fast path needs no LiteLLM proxy app for task routes,
so a bare inner app stands behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from typing import Any

import orjson
import uvicorn

from core.redact import Redactor
from proxy.auth import Authenticator
from proxy.fastpath import GatewayApp
from proxy.image_urls import ImageUrls
from proxy.keys import KeyResolver
from proxy.resilience import Resilience
from proxy.routing import RoutingTable
from proxy.settings import ResilienceSettings

MASTER_KEY = "plain-gateway-master-key-5e6f"
# Shaped like no known provider key, so only the redactor's knowledge of it can mask it.
PROVIDER_KEY = "plain-provider-key-0f9e8d7c6b"


class SlowUpstream:
    """An HTTP server that reads each request and never answers; it counts the connections
    opened and notices when the caller abandons one (the connection closes)."""

    def __init__(self) -> None:
        self.opened = 0
        self.abandoned = 0
        self.received = asyncio.Event()
        self.hung_up = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            self.received.set()
            while await reader.read(65536):
                pass
        self.abandoned += 1
        self.hung_up.set()
        writer.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> SlowUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # Connections still open (the test is over) are closed, so their handlers end.
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


class EchoingUpstream(SlowUpstream):
    """An OpenAI-style provider that refuses every request with a 401 whose message repeats
    the bearer key it was sent, as some providers do."""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        head = await reader.readuntil(b"\r\n\r\n")
        headers = dict(
            line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if line
        )
        lowered = {k.lower(): v for k, v in headers.items()}
        await reader.readexactly(int(lowered.get("content-length", "0")))
        key = lowered.get("authorization", "").removeprefix("Bearer ")
        body = orjson.dumps(
            {
                "error": {
                    "message": f"Incorrect API key provided: {key}",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
        )
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()


async def _not_found(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # pytest owns the process's signals.
        yield


@contextlib.asynccontextmanager
async def local_gateway(
    upstream_url: str,
    *,
    redactor: Redactor | None = None,
    resilience: ResilienceSettings | None = None,
    image_urls: ImageUrls | None = None,
) -> AsyncIterator[str]:
    """Serves task `local` (OpenAI's protocol at `upstream_url`, key PROVIDER_KEY) behind the
    fast path on a free port; yields the gateway's base URL."""
    config = {
        "model_list": [
            {
                "model_name": "local",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_key": "os.environ/OPENAI_API_KEY",
                    "api_base": upstream_url,
                },
            }
        ]
    }
    env = {"OPENAI_API_KEY": PROVIDER_KEY}
    routing = RoutingTable.from_config(config, env)
    settings = resilience or ResilienceSettings(
        attempts=1, backoff_base_s=0.01, backoff_max_s=0.01, request_timeout_s=60
    )
    redactor = redactor if redactor is not None else Redactor()
    keys = KeyResolver(env, redactor=redactor)
    app = GatewayApp(
        _not_found,
        routing=routing,
        authenticator=Authenticator(MASTER_KEY, redactor=redactor),
        resilience=Resilience(settings, keys, redactor=redactor),
        request_timeout_s=settings.request_timeout_s,
        redactor=redactor,
        image_urls=image_urls,
    )
    server = _Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, loop="none", lifespan="off", log_level="warning"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("local gateway exited during start-up")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
