"""A throw-away Redis server: own port and directory, no persistence, stopped on exit."""

from __future__ import annotations

import socket

from services._paths import find_program
from services._process import ManagedProcess, free_port
from services._server import LocalServer

__all__ = ["RedisServer"]

_HINT = "install Debian's redis-server package (./dev does so)"


class RedisServer(LocalServer):
    """``redis-server`` on 127.0.0.1 at ``url`` once started."""

    name = "redis"

    def __init__(self, *, port: int = 0) -> None:
        super().__init__(port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> None:
        binary = find_program("redis-server", hint=_HINT)
        workdir = self._tempdir()
        self._port = self._port or free_port()
        argv = [
            binary,
            "--port", str(self._port),
            "--bind", "127.0.0.1",
            "--dir", str(workdir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        self._process = ManagedProcess("redis", argv, workdir / "redis.log")
        self._process.spawn()
        self._process.wait_ready(self._answers_ping, timeout_s)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self._port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
