"""Fal image requests through the gateway: (a) server CPU per request against stock LiteLLM's
native `fal_ai/` path, and (b) from a Fal job completing to the client having its images.

Why it exists: the gateway follows Fal jobs over the status stream rather than by sleeping
between polls, and claims the client hears of a finished job within milliseconds (median
<= 50 ms, p99 <= 200 ms). One run starts the Fal emulator in this process (so the moment each
job ends is known exactly, on this machine's clock), `gateway up --no-kafka` as its own process
pointed at it, and sends image requests at several concurrencies; each latency is the client's
receipt time minus the emulator's end time of that request's job.

(a) runs stock `litellm --config` with a `fal_ai/fal-ai/flux/dev` group on the emulator's
synchronous endpoint beside the gateway's queue-based `image-generation` task; server CPU comes
from /proc/<pid>/stat (process and children) divided by requests. Target: the gateway at most
1 ms more per request.

    python bench/fal_bench.py [--requests 100] [--concurrency 1,8,32] [--run-ms 200]
                              [--cpu-requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy_bench import (  # noqa: E402 - the sibling bench's helpers
    GATEWAY_CLEARED,
    cpu_seconds,
    free_port,
    start_gateway_up,
    wait_ready,
)

from emulators import start_emulator  # noqa: E402 - after the path set-up above

MASTER = "sk-bench-fal-master-0001"


def start_stock(folder: Path, fal_url: str) -> tuple[subprocess.Popen[bytes], str]:
    """Stock LiteLLM serving Fal through its own native (synchronous) `fal_ai/` provider."""
    model = {
        "model_name": "fal-native",
        "litellm_params": {
            "model": "fal_ai/fal-ai/flux/dev",
            "api_key": "bench-fal-key",
            "api_base": f"{fal_url}/run",
        },
    }
    path = folder / "stock.yaml"
    path.write_text(
        yaml.safe_dump({"model_list": [model], "general_settings": {"master_key": MASTER}})
    )
    env = {k: v for k, v in os.environ.items() if k not in GATEWAY_CLEARED}
    env |= {"LITELLM_MASTER_KEY": MASTER, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "litellm"), "--config", str(path), "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/health/liveliness")
    return process, url


async def _cpu_load(url: str, model: str, n: int, concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)
    headers = {"authorization": f"Bearer {MASTER}"}
    body = {"model": model, "prompt": "cpu bench", "size": "256x256"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:

        async def run() -> None:
            async with limit:
                response = await client.post(f"{url}/v1/images/generations", json=body)
                response.raise_for_status()

        await asyncio.gather(*(run() for _ in range(n)))


def cpu_per_request(pid: int, url: str, model: str, n: int) -> float:
    asyncio.run(_cpu_load(url, model, 10, 2))  # warm-up
    before = cpu_seconds(pid)
    asyncio.run(_cpu_load(url, model, n, 8))
    return (cpu_seconds(pid) - before) * 1000 / n


def start_gateway(folder: Path, fal_url: str) -> tuple[subprocess.Popen[str], str]:
    config = yaml.safe_load((ROOT / "litellm_config.yaml").read_text())
    path = folder / "litellm_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {"LITELLM_MASTER_KEY": MASTER, "FAL_KEY": "bench-fal-key", "FAL_API_BASE": fal_url}
    return start_gateway_up(path, env)


async def one(client: httpx.AsyncClient, url: str, prompt: str) -> float:
    body = {"model": "image-generation", "prompt": prompt, "size": "256x256"}
    response = await client.post(f"{url}/v1/images/generations", json=body)
    received = time.time()
    response.raise_for_status()
    return received


def job_ends(runtime: object) -> dict[str, float]:
    """prompt -> clock time at which its job completed, from the emulator's queue."""
    jobs = runtime.queue.jobs.values()  # type: ignore[attr-defined]
    return {job.result[1].get("prompt"): job.ends for job in jobs if job.result[0] == 200}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--run-ms", type=float, default=200.0)
    parser.add_argument("--cpu-requests", type=int, default=200)
    args = parser.parse_args()
    emulator = start_emulator("fal")
    runtime = emulator.app.state.emulator_runtime
    runtime.queue.timings.queue_s = 0.0
    runtime.queue.timings.run_s = args.run_ms / 1000
    with tempfile.TemporaryDirectory(prefix="fal-bench-") as folder:
        gateway, url = start_gateway(Path(folder), emulator.url)
        stock, stock_url = start_stock(Path(folder), emulator.url)
        try:
            cpu = []
            for _ in range(2):  # interleaved, so drifting load hits both alike
                ours = cpu_per_request(gateway.pid, url, "image-generation", args.cpu_requests)
                theirs = cpu_per_request(stock.pid, stock_url, "fal-native", args.cpu_requests)
                cpu.append((ours, theirs))
            asyncio.run(_collect(url, runtime, 10, 1, "warm-up"))
            rows = []
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                tag = f"c{concurrency}"
                latencies = sorted(
                    asyncio.run(_collect(url, runtime, args.requests, concurrency, tag))
                )
                p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
                rows.append((concurrency, statistics.median(latencies), p99, max(latencies)))
        finally:
            for process in (gateway, stock):
                process.terminate()
                process.wait(30)
            emulator.stop()
    print(f"(a) server CPU per image request, {args.cpu_requests} requests at concurrency 8")
    print("| run | gateway (queue) | stock LiteLLM (fal_ai/, sync) | difference |")
    print("|---:|---:|---:|---:|")
    for index, (ours, theirs) in enumerate(cpu, 1):
        print(f"| {index} | {ours:.2f} ms | {theirs:.2f} ms | {ours - theirs:+.2f} ms |")
    print()
    print("(b) from the job completing to the client having it")
    print(f"job {args.run_ms:.0f} ms, {args.requests} requests per step")
    print("| concurrency | median | p99 | max |")
    print("|---:|---:|---:|---:|")
    for concurrency, median, p99, worst in rows:
        print(f"| {concurrency} | {median:.1f} ms | {p99:.1f} ms | {worst:.1f} ms |")
    return 0


async def _collect(url: str, runtime: object, n: int, concurrency: int, tag: str) -> list[float]:
    """Send the step's requests, then read each job's end time from the emulator."""
    received: dict[str, float] = {}
    limit = asyncio.Semaphore(concurrency)
    headers = {"authorization": f"Bearer {MASTER}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:

        async def run(i: int) -> None:
            prompt = f"bench {tag} {i}"
            async with limit:
                received[prompt] = await one(client, url, prompt)

        await asyncio.gather(*(run(i) for i in range(n)))
    ends = job_ends(runtime)
    return [(at - ends[prompt]) * 1000 for prompt, at in received.items()]


if __name__ == "__main__":
    raise SystemExit(main())
