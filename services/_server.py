"""What the single-process servers (Redis, PostgreSQL) share: a process, a temporary
directory that dies with the server, and ``start()`` / ``stop()`` / ``with``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from services._process import ManagedProcess
from services.errors import ServiceNotRunning

__all__ = ["LocalServer"]


class LocalServer:
    """Base of a server started by ``start()``; ``stop()`` ends it and removes its directory."""

    name = "server"

    def __init__(self, port: int) -> None:
        self._port = port
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: ManagedProcess | None = None

    @property
    def port(self) -> int:
        if self._process is None:
            raise ServiceNotRunning(f"{self.name} is not running")
        return self._port

    def start(self) -> None:
        raise NotImplementedError

    def _tempdir(self) -> Path:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"gw-{self.name}-")
        return Path(self._tmp.name)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

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
