"""A throw-away PostgreSQL server: initdb into a temporary directory, own port, stopped on exit.

Why durability is off (fsync, synchronous_commit, full_page_writes): the data dies with the
test session, and on a 2-core CI machine fsyncs are most of a small suite's database time.
PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user that
Debian's package creates.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from services._paths import find_program
from services._process import ManagedProcess, free_port
from services._server import LocalServer
from services.errors import ServiceNotInstalled, ServiceStartFailed

__all__ = ["PostgresServer"]

_BIN_GLOB = "/usr/lib/postgresql/*/bin/"
_HINT = "install Debian's postgresql package (./dev does so)"


class PostgresServer(LocalServer):
    """PostgreSQL on 127.0.0.1 at ``url`` (database ``postgres``, user ``postgres``, trust)."""

    name = "postgres"

    def __init__(self, *, port: int = 0) -> None:
        super().__init__(port)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout_s: float = 60.0) -> None:
        initdb = find_program("initdb", extra_globs=(_BIN_GLOB + "initdb",), hint=_HINT)
        bindir = Path(initdb).resolve().parent  # /usr/local/bin may hold only a few links
        postgres = str(bindir / "postgres")
        isready = str(bindir / "pg_isready")
        root = self._tempdir()
        data, sockets = root / "data", root / "sockets"
        data.mkdir()
        sockets.mkdir()
        user = self._run_as()
        if user is not None:
            for path in (root, data, sockets):
                shutil.chown(path, user.pw_uid, user.pw_gid)
        initdb_argv = [initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync",
                       "-E", "UTF8", "--locale", "C"]  # fmt: skip
        uid, gid = (None, None) if user is None else (user.pw_uid, user.pw_gid)
        done = subprocess.run(  # noqa: S603 - fixed argv
            initdb_argv, capture_output=True, check=False, user=uid, group=gid
        )
        if done.returncode != 0:
            raise ServiceStartFailed(f"initdb failed: {done.stderr.decode(errors='replace')}")
        self._port = self._port or free_port()
        argv = [
            postgres, "-D", str(data), "-p", str(self._port), "-h", "127.0.0.1",
            "-k", str(sockets), "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=200",
        ]  # fmt: skip
        log = root / "postgres.log"
        log.touch()
        if user is not None:
            shutil.chown(log, user.pw_uid, user.pw_gid)
        self._process = ManagedProcess("postgresql", argv, log, user=uid, group=gid)
        self._process.spawn()
        ready = [isready, "-q", "-h", "127.0.0.1", "-p", str(self._port), "-U", "postgres"]
        self._process.wait_ready(
            lambda: subprocess.run(ready, check=False).returncode == 0,  # noqa: S603
            timeout_s,
        )

    @staticmethod
    def _run_as() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ServiceNotInstalled(f"running as root needs the postgres user: {_HINT}") from exc
