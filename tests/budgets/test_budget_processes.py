"""A Redis-held budget holds across separate operating-system processes."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

WORKER = Path(__file__).with_name("budget_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_two_processes_share_one_budget(
    redis_url: str, namespace: str, max_in_window: Callable[[Sequence[float], float], int]
) -> None:
    """Two processes taking grants flat out for 2 s at 600 rpm, burst 2, never exceed 12 in
    any second."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    args = [redis_url, namespace, "2.0", "600", "2"]
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            env=env,
        )
        for _ in range(2)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert (await asyncio.wait_for(worker.stdout.readline(), 20)).strip() == b"ready"
    outputs = await asyncio.wait_for(
        asyncio.gather(*(worker.communicate(b"go\n") for worker in workers)), 20
    )
    assert [worker.returncode for worker in workers] == [0, 0]
    per_process = [[float(line) for line in out.split()] for out, _ in outputs]
    stamps = [stamp for process in per_process for stamp in process]

    assert all(len(process) > 0 for process in per_process)
    # Alone, each process could take ~22 grants in 2 s; together they still share one budget.
    assert 15 <= len(stamps) <= 10 * 2 + 2 + 1
    assert max_in_window(stamps, 1.0) <= 10 + 2 + 1
