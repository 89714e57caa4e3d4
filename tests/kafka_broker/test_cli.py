"""The ``python -m emulators.kafka`` command runs a broker until SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from child_process import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_cli_prints_the_bootstrap_address_and_exits_cleanly_on_sigterm() -> None:
    """The CLI prints KAFKA_BOOTSTRAP_SERVERS for the requested port and exits 0 on SIGTERM."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators.kafka", "--port", str(port), "--topic", "orders:3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline().strip()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert (first_line, returncode) == (f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}", 0)
