"""Child processes the tests start the way a user does: a free port for one, its stdout read
until its ready line, and a fresh port when the chosen one was taken before the child bound it.

Why it exists: `free_port()` releases the port before the child binds it, often tens of seconds
later (LiteLLM's imports come first), so on a loaded machine another process (a test's broker,
an outgoing connection) can take it in between. Every test that starts `gateway up` on a port of
its own goes through `on_a_free_port`, so the retry exists once.
"""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

__all__ = [
    "PortTaken",
    "Ready",
    "free_port",
    "on_a_free_port",
    "start_until_ready",
    "stock_litellm",
]

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
_PORT_TRIES = 3


def free_port() -> int:
    """A port nothing listens on at this moment (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PortTaken(Exception):
    """The child exited because its port was bound by someone else first."""


@dataclass(frozen=True, slots=True)
class Ready:
    """A child that printed its ready line, and the lines it printed up to that one."""

    process: subprocess.Popen[str]
    lines: list[str]


def start_until_ready(
    argv: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    cwd: Path,
    stderr: Path,
    ready: str,
    timeout_s: float,
) -> Ready:
    """Start `argv` (which binds `port`) and read its stdout until a line starts with `ready`.

    Raises PortTaken when the child exited saying `port` was in use, RuntimeError with its lines
    and stderr for any other exit before ready; the child is killed if the wait itself fails.
    Its stdout keeps being read after ready, so a chatty child never blocks on a full pipe.
    """
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=errors, text=True
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    printed: list[str] = []
    try:
        while (line := lines.get(timeout=timeout_s)) is not None:
            printed.append(line)
            if line.startswith(ready):
                return Ready(process, printed)
    except BaseException:
        process.kill()
        process.wait(timeout=30)
        raise
    process.wait(timeout=30)
    raise _exited(argv[0], port, printed, stderr)


def _exited(program: str, port: int, printed: list[str], log: Path) -> Exception:
    """Why a child exited before ready: PortTaken, or an error with its lines and log."""
    text = log.read_text()
    # uvicorn's words for a failed bind: the port alone would also match an unrelated line.
    if f"address ('127.0.0.1', {port}): address already in use" in text:
        return PortTaken(port)
    return RuntimeError(f"{program} exited before ready: {printed}\n{text[-3000:]}")


def on_a_free_port(start: Callable[[int], T], tries: int = _PORT_TRIES) -> T:
    """`start(port)` on a fresh free port, again on another while it raises PortTaken."""
    for attempt in range(tries):
        try:
            return start(free_port())
        except PortTaken:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


@contextmanager
def stock_litellm(
    config: Path, env: Mapping[str, str], log: Path, *, timeout_s: float = 90
) -> Iterator[str]:
    """Stock `litellm --config config` on a free port until the block ends: its URL, once its
    liveliness route answers (it prints no ready line of its own), then SIGTERM."""
    litellm = Path(sys.executable).parent / "litellm"

    def start(port: int) -> tuple[subprocess.Popen[bytes], str]:
        argv = [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        with log.open("wb") as out:
            process = subprocess.Popen(argv, cwd=ROOT, env=dict(env), stdout=out, stderr=out)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_live(f"{url}/health/liveliness", process, timeout_s)
        except BaseException:
            process.kill()
            process.wait(timeout=30)
            raise
        if process.poll() is not None:
            raise _exited("litellm", port, [], log)
        return process, url

    process, url = on_a_free_port(start)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_live(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until `url` answers 200 or the process exits; TimeoutError when neither happens."""
    deadline = time.monotonic() + timeout_s
    while process.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s} s")
        time.sleep(0.2)  # polling a server that offers no readiness event
