"""Run an ASGI app with uvicorn in a background thread.

Why it exists: tests, benchmarks and the CLI need an emulator on a real socket that starts and
stops synchronously (from sync fixtures, or beside an async test's own loop) without sharing
that caller's event loop; a thread with its own loop gives exactly that.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from typing import Protocol, Self

import uvicorn
from starlette.applications import Starlette

from emulators.http.errors import EmulatorServerError

__all__ = ["EmulatorServer", "EmulatorServerError", "listening_socket"]

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


class _Shutdownable(Protocol):
    def begin_shutdown(self) -> None: ...

    def end_shutdown(self) -> None: ...


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket whose accepted connections send small writes at once.

    Accepted sockets inherit TCP_NODELAY; without it uvloop leaves Nagle on and every
    keep-alive response waits ~40 ms for a delayed ACK (headers and body are two writes).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


class EmulatorServer:
    """A started-on-demand uvicorn server bound to ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        app: Starlette,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.app = app
        self.host = host
        # (certificate chain file, private key file): serve HTTPS, for SDKs that insist on it.
        self._tls = tls
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmulatorServerError("server not started")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> None:
        """Bind and serve; returns once the socket accepts connections."""
        if self._thread is not None:
            raise EmulatorServerError("server already started")
        runtime: _Shutdownable | None = getattr(self.app.state, "emulator_runtime", None)
        if runtime is not None:
            runtime.end_shutdown()
        sock = listening_socket(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,  # per-request log lines would dominate the emulator's cost
            lifespan="off",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
            ssl_certfile=self._tls[0] if self._tls else None,
            ssl_keyfile=self._tls[1] if self._tls else None,
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sock, started), name=f"emulator-{self._port}", daemon=True
        )
        self._thread.start()
        if not started.wait(_START_TIMEOUT_S) or not self._server.started:
            raise EmulatorServerError(f"emulator on port {self._port} did not start")

    def _run(self, sock: socket.socket, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        server = self._server
        assert server is not None

        async def serve() -> None:
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            # uvicorn exposes readiness only as a flag, not an event.
            while not server.started and not task.done():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            started.set()
            await task

        try:
            loop.run_until_complete(serve())
        finally:
            started.set()
            sock.close()
            loop.close()

    def stop(self) -> None:
        """Stop serving; hanging requests are released first so this returns quickly."""
        server, thread, loop = self._server, self._thread, self._loop
        if server is None or thread is None:
            return
        runtime: _Shutdownable | None = getattr(self.app.state, "emulator_runtime", None)
        if runtime is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(runtime.begin_shutdown)
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        self._server = self._thread = self._loop = None
        if thread.is_alive():
            raise EmulatorServerError("emulator did not stop in time")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
