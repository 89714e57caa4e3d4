"""`gateway up --no-kafka` as a real process, for tests of what a user starts.

Why it exists: several end-to-end tests (images, Vertex, the ONNX switch, jobs surviving a
restart) start the command a user runs and wait for its ready line; one helper owns the
environment they clear, the start-up lines they read and the SIGTERM that ends them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from child_process import on_a_free_port, start_until_ready

__all__ = ["CLEARED", "GatewayProcess", "gateway_up"]

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
    Without `port` it runs on a free one (another if that was taken before the child bound it);
    a caller that names one (a restart on the same URL) gets that port or an error.
    """
    environ = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environ |= {"LITELLM_MASTER_KEY": master_key, "PYTHONPATH": str(ROOT), **(env or {})}

    def start(chosen: int) -> tuple[subprocess.Popen[str], GatewayProcess]:
        log = config.parent / f"stderr-{time.monotonic_ns()}.log"
        argv = [str(GATEWAY), "up", "--no-kafka", "--port", str(chosen), "--config", str(config)]
        ready = start_until_ready(
            argv,
            port=chosen,
            env=environ,
            cwd=ROOT,
            stderr=log,
            ready="gateway: ready",
            timeout_s=_READY_TIMEOUT_S,
        )
        return ready.process, GatewayProcess(f"http://127.0.0.1:{chosen}", ready.lines, log)

    process, running = start(port) if port is not None else on_a_free_port(start)
    try:
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    if exit_zero:
        assert code == 0, running.log.read_text()[-3000:]
