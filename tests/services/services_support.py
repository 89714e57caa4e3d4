"""What the launcher tests share: waiting for a server's process to be gone, and a server
started by a process that is then SIGKILLed, so no finaliser of the launcher runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ROOT", "gone", "server_of_killed_launcher"]

ROOT = Path(__file__).resolve().parents[2]


def gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether process `pid` has ended (or is a zombie) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie still answers kill(0); its parent (this test) reaps only its own children.
        status = Path(f"/proc/{pid}/stat")
        if status.exists() and status.read_text().split()[2] == "Z":
            return True
        time.sleep(0.05)
    return False


def server_of_killed_launcher(server_class: str) -> int:
    """The PID of a `services.<server_class>` started by a child Python that is SIGKILLed
    (and reaped) before this returns."""
    script = (
        "import time\n"
        f"from services import {server_class}\n"
        f"s = {server_class}(); s.start()\n"
        "print(s._process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ}
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    return child
