"""A throw-away Redis server: own port and directory, no persistence, stopped on exit."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from types import TracebackType

from services._paths import find_program
from services._process import ManagedProcess, free_port
from services.errors import ServiceNotRunning

__all__ = ["RedisServer"]

_HINT = "install Debian's redis-server package (./dev does so)"


class RedisServer:
    """``redis-server`` on 127.0.0.1 at ``url`` once started."""

    def __init__(self, *, port: int = 0, workdir: Path | None = None) -> None:
        self._port = port
        self._workdir = workdir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: ManagedProcess | None = None

    @property
    def port(self) -> int:
        if self._process is None:
            raise ServiceNotRunning("redis is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> None:
        binary = find_program("redis-server", hint=_HINT)
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gw-redis-")
            self._workdir = Path(self._tmp.name)
        self._port = self._port or free_port()
        argv = [
            binary,
            "--port", str(self._port),
            "--bind", "127.0.0.1",
            "--dir", str(self._workdir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        self._process = ManagedProcess("redis", argv, self._workdir / "redis.log")
        self._process.spawn()
        self._process.wait_ready(self._answers_ping, timeout_s)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self._port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._workdir = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
