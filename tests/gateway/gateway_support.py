"""Helpers shared by the `gateway` command's tests: running it (`send` against a broker too),
config copies, fake keys."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from provider_setup import FAKE_KEYS

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = Path(sys.executable).parent / "gateway"
# Test handler factories (`consumer_handlers:SlowEcho`) live beside the consumer tests; child
# processes import them from there.
HANDLERS_DIR = ROOT / "tests" / "consumers"
# Variables that change what a `gateway` command picks; each test sets its own.
MODE_VARS = {
    "LITELLM_MASTER_KEY",
    "CONFIG_FILE_PATH",
    "GOOGLE_API_KEY",
    *FAKE_KEYS,
    "ANTHROPIC_API_BASE",
    "OPENAI_API_BASE",
    "GEMINI_API_BASE",
    "KAFKA_BOOTSTRAP_SERVERS",
    "REDIS_URL",
}


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment without the variables in MODE_VARS, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in MODE_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(HANDLERS_DIR), str(ROOT)])
    return {**env, **extra}


async def run_gateway(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 60.0
) -> tuple[int, str, str]:
    """Run `python -m gateway *args` to completion: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        cwd=ROOT,
        env=env if env is not None else base_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def send_to(servers: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run `gateway send *args` to completion against the broker at `servers`, its output
    captured as text."""
    return subprocess.run(
        [str(GATEWAY), "send", *args],
        cwd=ROOT,
        env=base_env(KAFKA_BOOTSTRAP_SERVERS=servers),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def child_pids(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.add(int(entry.name))
    return found
