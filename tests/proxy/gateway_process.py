"""`gateway up --no-kafka` as a real process, for tests of what a user starts.

Why it exists: several end-to-end tests (images, Vertex, the ONNX switch, jobs surviving a
restart) start the command a user runs and wait for its ready line; one helper owns the
environment they clear, the start-up lines they read and the SIGTERM that ends them.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CLEARED", "GatewayProcess", "free_port", "gateway_up"]

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = Path(sys.executable).parent / "gateway"
# Anything that would make `gateway up` use a real provider, a shared service or another
# config: the embedded default is what these tests exercise unless they set a value back.
CLEARED = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "FAL_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "ANTHROPIC_API_BASE",
    "OPENAI_API_BASE",
    "GEMINI_API_BASE",
    "FAL_API_BASE",
    "VERTEX_API_BASE",
    "KAFKA_BOOTSTRAP_SERVERS",
    "CONFIG_FILE_PATH",
    "GATEWAY_DATABASE_URL",
    "GATEWAY_ARTIFACT_SIGNING_KEY",
    "GATEWAY_PUBLIC_URL",
)
_READY_TIMEOUT_S = 90


@dataclass(frozen=True, slots=True)
class GatewayProcess:
    """A running `gateway up`: its URL, the lines it printed until ready, its stderr file."""

    url: str
    lines: list[str]
    log: Path

    def emulator_bases(self, providers: Sequence[str]) -> dict[str, str]:
        """Each named provider's emulator base URL, from the `emulated <provider> <url>` lines
        (without the API's version path)."""
        found = {}
        for provider in providers:
            for line in self.lines:
                if match := re.match(rf"\s*emulated {provider}\s+(https?://\S+)", line):
                    found[provider] = match.group(1).removesuffix("/v1").removesuffix("/v1beta")
        assert set(found) == set(providers), self.lines
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _PortTaken(Exception):
    """The chosen port was bound by someone else between `free_port` and the child's bind."""


# free_port() releases the port before the child binds it, so on a busy machine another
# process (a test's broker, an outgoing connection) can take it in between. A fresh port is
# tried then; a caller that needs one fixed port (a restart on the same URL) gets no retry.
_PORT_TRIES = 3


@contextmanager
def gateway_up(
    config: Path,
    *,
    master_key: str,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    exit_zero: bool = False,
) -> Iterator[GatewayProcess]:
    """`gateway up --no-kafka --config config` until the block ends, then SIGTERM.

    `env` is added to the cleared environment; `exit_zero` asserts a clean exit on SIGTERM.
    """
    environ = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environ |= {"LITELLM_MASTER_KEY": master_key, "PYTHONPATH": str(ROOT), **(env or {})}
    for attempt in range(1 if port is not None else _PORT_TRIES):
        try:
            started = _start(config, environ, port if port is not None else free_port())
            break
        except _PortTaken:
            if attempt == _PORT_TRIES - 1:
                raise
    process, running = started
    try:
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    if exit_zero:
        assert code == 0, running.log.read_text()[-3000:]


def _start(
    config: Path, environ: Mapping[str, str], port: int
) -> tuple[subprocess.Popen[str], GatewayProcess]:
    """The child on `port`, once it printed its ready line; _PortTaken when the port was gone."""
    log = config.parent / f"stderr-{time.monotonic_ns()}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [str(GATEWAY), "up", "--no-kafka", "--port", str(port), "--config", str(config)],
            cwd=ROOT,
            env=dict(environ),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
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
        while (line := lines.get(timeout=_READY_TIMEOUT_S)) is not None:
            printed.append(line)
            if line.startswith("gateway: ready"):
                return process, GatewayProcess(f"http://127.0.0.1:{port}", printed, log)
    except BaseException:
        process.kill()
        process.wait(timeout=30)
        raise
    process.wait(timeout=30)
    errors = log.read_text()
    if f"address ('127.0.0.1', {port}): address already in use" in errors:
        raise _PortTaken(port)
    raise RuntimeError(f"gateway exited before ready: {printed}\n{errors}")
