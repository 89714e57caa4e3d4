"""A throw-away S3-compatible server: Versity's S3 gateway (`versitygw`, Apache-2.0) over a
temporary directory, on its own port, stopped on exit.

Why versitygw: it is a real S3 server (SigV4, conditional writes, list pagination, the error
codes S3 answers) under a permissive licence, built from its Go module in one `go install`
(about two and a half minutes on two cores, once per machine: the binary is cached under
`cache_dir()`, and `python -m services s3-server`, run by ./dev, builds it when missing).
Its posix backend stores a bucket as a directory under the root and an object as a file, so
a bucket is made by making the directory, and the data dies with the temporary directory.

The credentials are random per server and reach the process through its environment
(`ROOT_ACCESS_KEY_ID` / `ROOT_SECRET_ACCESS_KEY`), never its argv, which other users can read.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from services._paths import cache_dir, find_program
from services._process import ManagedProcess, free_port
from services._server import LocalServer
from services.errors import ServiceNotInstalled, ServiceNotRunning

__all__ = ["VERSITYGW_MODULE", "VERSITYGW_VERSION", "S3Server", "versitygw_binary"]

VERSITYGW_MODULE = "github.com/versity/versitygw/cmd/versitygw"
VERSITYGW_VERSION = "v1.8.0"
_HINT = "./dev builds it (needs Go; or run `python -m services s3-server`)"
# S3's bucket naming rules, which the posix backend turns into directory names.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# One `go install` of the module and its dependencies on a loaded two-core machine.
_BUILD_TIMEOUT_S = 1200


def _cached_binary() -> Path:
    return cache_dir() / f"versitygw-{VERSITYGW_VERSION}" / "versitygw"


def versitygw_binary(*, build: bool = False) -> Path:
    """The versitygw binary of VERSITYGW_VERSION, built into the cache first when `build`
    (ServiceNotInstalled when it is missing and not built, or Go is missing)."""
    binary = _cached_binary()
    if binary.is_file():
        return binary
    if not build:
        raise ServiceNotInstalled(f"versitygw {VERSITYGW_VERSION} is not built: {_HINT}")
    go = find_program("go", hint="install Go 1.24 or later to build versitygw")
    # Built into a scratch directory and renamed into place, so an interrupted build never
    # leaves a half-written binary where the next run would take it for a finished one.
    scratch = Path(tempfile.mkdtemp(prefix="versitygw-", dir=cache_dir()))
    try:
        env = {**os.environ, "GOBIN": str(scratch), "CGO_ENABLED": "0"}
        done = subprocess.run(  # noqa: S603 - fixed argv
            [go, "install", f"{VERSITYGW_MODULE}@{VERSITYGW_VERSION}"],
            env=env,
            capture_output=True,
            check=False,
            timeout=_BUILD_TIMEOUT_S,
        )
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-2000:]
            raise ServiceNotInstalled(f"building versitygw {VERSITYGW_VERSION} failed:\n{tail}")
        binary.parent.mkdir(parents=True, exist_ok=True)
        os.replace(scratch / "versitygw", binary)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return binary


class S3Server(LocalServer):
    """versitygw's posix backend on 127.0.0.1 at `endpoint_url` once started; its one account
    signs with `access_key_id` / `secret_access_key` in `region`."""

    name = "s3"

    def __init__(self, *, port: int = 0, region: str = "us-east-1") -> None:
        super().__init__(port)
        self.region = region
        self.access_key_id = "gw" + secrets.token_hex(8)
        self.secret_access_key = secrets.token_urlsafe(30)
        self._root: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        binary = versitygw_binary()
        workdir = self._tempdir()
        self._root = workdir / "buckets"
        self._root.mkdir()
        self._port = self._port or free_port()
        env = {
            **os.environ,
            "ROOT_ACCESS_KEY_ID": self.access_key_id,
            "ROOT_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        argv = [
            str(binary), "--port", f"127.0.0.1:{self._port}", "--region", self.region,
            "--quiet", "posix", str(self._root),
        ]  # fmt: skip
        self._process = ManagedProcess("versitygw", argv, workdir / "versitygw.log", env=env)
        self._process.spawn()
        self._process.wait_ready(self._answers_http, timeout_s)

    def create_bucket(self, name: str) -> None:
        """Make bucket `name` (the posix backend's bucket is a directory under its root)."""
        if self._root is None or self._process is None:
            raise ServiceNotRunning("the S3 server is not running")
        if _BUCKET.fullmatch(name) is None:
            raise ValueError(f"not an S3 bucket name: {name!r}")
        (self._root / name).mkdir(exist_ok=True)

    def stop(self) -> None:
        super().stop()
        self._root = None

    def _answers_http(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self._port), timeout=0.5) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                return sock.recv(16).startswith(b"HTTP/")
        except OSError:
            return False
