"""One proxy worker process of `gateway up --workers N` (`python -m gateway.worker`).

Why it exists: one Python process serves the proxy on one core; several processes serve one
port when each binds its own socket with SO_REUSEPORT (see `reuseport_socket`). The parent
(`gateway.workers`) starts this module, writes one `WorkerSpec` as a JSON line to its stdin
and keeps stdin open: end of file means the parent is gone, so a worker never outlives it. The
worker builds its own `ProxyServer` from the spec (the same config, environment and master key
as the parent's), answers one `WorkerReport` line on its stdout (ready, or why it could not
start), and serves until SIGTERM. Everything the workers share lives in the gateway database
(keys, identities, media jobs) or Redis; nothing is shared through this process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from typing import BinaryIO

import msgspec
import structlog

from core.config import ConfigError
from core.redact import Redactor

__all__ = ["WORKER_HEADER", "WorkerReport", "WorkerSpec", "main", "reuseport_socket"]

# Every answer of a worker carries its pid here: which process served a request, for a user
# reading logs or a test killing one worker.
WORKER_HEADER = "x-gateway-worker"


class WorkerSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the parent tells a worker: everything its proxy is built from."""

    index: int
    config: str
    # The environment the config's `os.environ/` references resolve from (the parent's
    # snapshot with the emulators' bases and keys): secrets, so sent on stdin, never argv.
    environ: dict[str, str]
    master_key: str
    host: str
    port: int
    log_json: bool
    # Whether this worker sweeps unfinished media jobs: exactly one of them does.
    sweep_jobs: bool
    # How many workers serve together (budgets held without Redis are split between them).
    workers: int = 1


class WorkerReport(msgspec.Struct, frozen=True, kw_only=True):
    """The one line a worker answers once it serves, or instead of serving."""

    pid: int
    ready: bool
    error: str | None = None
    # The error is the configuration's (the parent exits 2 with it, as a single process does).
    config_error: bool = False


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT, not yet listening.

    Why each worker binds its own socket rather than all accepting on one inherited socket:
    with one shared socket the kernel wakes every worker for each connection and asyncio
    accepts a whole backlog per wake-up, so one worker can take all of a client's pooled
    connections while the others idle. With SO_REUSEPORT the kernel spreads connections over
    the listening sockets by a hash of their addresses, and a worker that dies takes only its
    own socket with it: new connections go to the live ones at once. (uvicorn's `fd=` option
    is no alternative on Linux: it rebuilds the socket as AF_UNIX.) The parent holds one more
    such socket, bound but never listening, so the port stays reserved, and `--port 0`
    resolved, while workers restart; only listening sockets receive connections.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _report(out: BinaryIO, report: WorkerReport) -> None:
    # A parent that stopped reading (it already has this worker's first report) needs no more.
    with contextlib.suppress(OSError):
        out.write(msgspec.json.encode(report) + b"\n")
        out.flush()


async def _serve(spec: WorkerSpec, redactor: Redactor, out: BinaryIO) -> None:
    from consumers.gc_tuning import settle_heap  # noqa: PLC0415 - the stack's GC tuning
    from proxy.server import ProxyServer  # noqa: PLC0415 - imports LiteLLM
    from proxy.settings import build_settings  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def parent_gone() -> None:
        # Readable stdin: the parent wrote nothing after the spec, so this is end of file.
        if not os.read(0, 4096):
            loop.remove_reader(0)
            stop.set()

    loop.add_reader(0, parent_gone)
    settings = build_settings(
        spec.config, spec.environ, master_key=spec.master_key, redactor=redactor
    )
    sock = reuseport_socket(spec.host, spec.port)
    server = ProxyServer(
        settings,
        host=spec.host,
        port=spec.port,
        redactor=redactor,
        sock=sock,
        headers=[(WORKER_HEADER, str(os.getpid()))],
        sweep_jobs=spec.sweep_jobs,
        processes=spec.workers,
    )
    try:
        await server.start()
    except BaseException:
        sock.close()
        raise
    try:
        settle_heap()
        _report(out, WorkerReport(pid=os.getpid(), ready=True))
        await stop.wait()
    finally:
        await server.stop()


def main() -> int:
    # Ctrl-C in a terminal signals the whole process group; the parent alone decides when
    # workers stop (SIGTERM), so a worker is never restarted for a stop it was not asked to make.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The report goes on the real stdout; anything else written there later (LiteLLM prints)
    # joins the logs on stderr instead of filling a pipe the parent no longer reads.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    spec = msgspec.json.decode(sys.stdin.buffer.readline(), type=WorkerSpec)
    redactor = Redactor([spec.master_key])
    from core.logging import configure_logging  # noqa: PLC0415

    configure_logging(json=spec.log_json, redactor=redactor)
    import uvloop  # noqa: PLC0415

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(spec, redactor, out))
    except ConfigError as exc:
        message = redactor.scrub(str(exc))
        _report(out, WorkerReport(pid=os.getpid(), ready=False, error=message, config_error=True))
        return 2
    except Exception as exc:
        structlog.get_logger("gateway.worker").exception("proxy_worker_failed")
        message = redactor.scrub(f"{type(exc).__name__}: {exc}")
        _report(out, WorkerReport(pid=os.getpid(), ready=False, error=message))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
