"""A separate consumer process for the cross-process rate-limit test.

Usage: python ratelimit_worker.py URL NAMESPACE KEY SECONDS RATE BURST
Prints "ready" once connected, waits for a line on stdin (so all workers start together),
then acquires tokens as fast as the limiter allows for SECONDS and prints one wall-clock
timestamp per token (wall clock, because the timestamps of several processes are merged).
"""

from __future__ import annotations

import asyncio
import sys
import time

from consumers.ratelimit import RateLimit, RedisRateLimiter


async def main(argv: list[str]) -> None:
    url, namespace, key, seconds, rate, burst = argv
    limit = RateLimit(float(rate), int(burst))
    async with RedisRateLimiter(url, namespace=namespace) as limiter:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        stamps: list[float] = []
        end = time.monotonic() + float(seconds)
        while time.monotonic() < end:
            await limiter.acquire(key, limit)
            stamps.append(time.time())
    print("\n".join(f"{stamp:.6f}" for stamp in stamps), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:7]))
