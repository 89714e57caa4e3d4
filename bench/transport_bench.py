"""CPU per request of the direct provider transport versus `litellm.acompletion`.

Why it exists: the fast path's claim that calling providers directly is much cheaper than
LiteLLM's completion pipeline is measured here, per provider, on the same requests against the
same emulators. Each emulator runs as its own process (`python -m emulators <name>`) so its CPU
is not counted; this process's CPU time (`time.process_time`) over N requests is, at each
concurrency, interleaved so drifting machine load hits both sides alike.

    python bench/transport_bench.py [--requests 400] [--concurrency 1,16] [--providers ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# LiteLLM fetches its cost map and beta-header table from the network unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

import litellm  # noqa: E402 - after the environment above

from proxy.routing import Deployment  # noqa: E402
from proxy.transport import Transport  # noqa: E402

KEY = "bench-provider-key"
MODELS = {
    "openai": "openai/gpt-4o",
    "anthropic": "anthropic/claude-sonnet-4-20250514",
    "gemini": "gemini/gemini-2.5-flash",
}
SUFFIX = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}
MESSAGES = [
    {"role": "system", "content": "You write short product captions."},
    {"role": "user", "content": "benchmark hello: caption a red wool coat"},
]


@contextlib.contextmanager
def emulator(provider: str) -> Iterator[str]:
    """The base URL of a fresh emulator process for `provider`, stopped after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators", provider, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "<provider> http://127.0.0.1:PORT" once it serves
        if not line.startswith(f"{provider} "):
            raise RuntimeError(f"{provider} emulator did not start: {line!r}")
        yield line.split()[1] + SUFFIX[provider]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def cpu_per_request(
    one: Callable[[], Awaitable[Any]], concurrency: int, requests: int
) -> tuple[float, int]:
    """CPU milliseconds of this process per call of `one`, and the calls that failed."""
    remaining = requests
    errors = 0

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            try:
                await one()
            except Exception:
                errors += 1

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) * 1000 / requests, errors


async def bench(providers: list[str], plan: list[int], requests: int, stream: bool) -> None:
    transport = Transport()
    await transport.start()
    params: dict[str, Any] = {"messages": MESSAGES, "max_tokens": 64}
    if stream:
        params |= {"stream": True, "stream_options": {"include_usage": True}}
    print(f"{'provider':<10} {'conc':>4} {'direct ms':>10} {'litellm ms':>11} {'ratio':>6}")
    try:
        for provider in providers:
            with emulator(provider) as base:
                target = Deployment(
                    group="bench",
                    provider=provider,
                    model=MODELS[provider],
                    key_env=None,
                    literal_key=None,
                    params={"model": MODELS[provider], "api_base": base},
                )
                assert transport.owns(target, params)

                async def direct(target: Deployment = target) -> None:
                    if stream:
                        async for _ in transport.stream(target, KEY, params, timeout_s=30):
                            pass
                    else:
                        await transport.complete(target, KEY, params, timeout_s=30)

                async def via_litellm(base: str = base, provider: str = provider) -> None:
                    answer = await litellm.acompletion(
                        model=MODELS[provider],
                        api_base=base,
                        api_key=KEY,
                        num_retries=0,
                        drop_params=True,
                        timeout=30,
                        **{"no-log": True},
                        **params,
                    )
                    if stream:
                        async for _ in answer:
                            pass
                    else:
                        answer.model_dump()  # what the fast path did with it

                for one in (direct, via_litellm):  # warm-up: imports, pools, caches
                    await cpu_per_request(one, 4, 50)
                for concurrency in plan:
                    ours, ours_errors = await cpu_per_request(direct, concurrency, requests)
                    theirs, theirs_errors = await cpu_per_request(
                        via_litellm, concurrency, requests
                    )
                    failed = (
                        f"  errors {ours_errors}/{theirs_errors}"
                        if ours_errors or (theirs_errors)
                        else ""
                    )
                    print(
                        f"{provider:<10} {concurrency:>4} {ours:10.3f} {theirs:11.3f} "
                        f"{ours / theirs:6.2f}{failed}",
                        flush=True,
                    )
    finally:
        await transport.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--providers", default=",".join(MODELS))
    parser.add_argument("--stream", action="store_true", help="streamed completions")
    args = parser.parse_args()
    litellm.suppress_debug_info = True
    plan = [int(c) for c in args.concurrency.split(",")]
    asyncio.run(bench(args.providers.split(","), plan, args.requests, args.stream))
    return 0


if __name__ == "__main__":
    sys.exit(main())
