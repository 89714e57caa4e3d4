"""A separate process for the cross-process budget test.

Usage: python budget_worker.py URL NAMESPACE SECONDS RPM BURST
Prints "ready" once connected, waits for a line on stdin (so all workers start together),
then takes grants as fast as the budget allows for SECONDS and prints one wall-clock
timestamp per grant (wall clock, because the timestamps of several processes are merged).
"""

from __future__ import annotations

import asyncio
import sys
import time

from budgets import Budgets, Limit, RedisStore


async def main(argv: list[str]) -> None:
    url, namespace, seconds, rpm, burst = argv
    limit = Limit(provider="p", rpm=float(rpm), burst=int(burst))
    budgets = Budgets([limit], RedisStore(url, namespace=namespace), poll_s=0.02)
    await budgets.start()
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        stamps: list[float] = []
        loop = asyncio.get_running_loop()
        end = time.monotonic() + float(seconds)
        while time.monotonic() < end:
            grant = await budgets.acquire("p", "m", "t", user="w", deadline=loop.time() + 10)
            stamps.append(time.time())
            await budgets.release(grant)
    finally:
        await budgets.stop()
    print("\n".join(f"{stamp:.6f}" for stamp in stamps), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:6]))
