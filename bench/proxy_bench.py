"""CPU per request of the gateway proxy versus stock LiteLLM proxy, against one emulator.

Why it exists: the gateway's fast path is justified by a measured claim (at most half of stock
LiteLLM's server CPU per request). One run starts an OpenAI emulator process, stock
`litellm --config` and `gateway up` as separate processes pointed at it, drives each in turn
with a separate load-generator process at several concurrencies, and prints CPU ms/request (from
/proc/<pid>/stat of the server process and its children), req/s and p50/p99 latency.

    python bench/proxy_bench.py [--requests 600,2000,2000] [--concurrency 1,16,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

MASTER = "sk-bench-master-key-0001"
GROUP = "bench"
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# What would make `gateway up` talk to a real provider or read another config.
GATEWAY_CLEARED = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "FAL_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "VERTEX_API_BASE",
    "FAL_API_BASE",
    "CONFIG_FILE_PATH",
)


def start_gateway_up(config: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`gateway up --no-kafka --config config` with `env` over the cleared environment, once
    it prints its ready line; the caller terminates it."""
    environ = {k: v for k, v in os.environ.items() if k not in GATEWAY_CLEARED}
    environ |= {"PYTHONPATH": str(ROOT), **env}
    port = free_port()
    command = [str(BIN / "gateway"), "up", "--no-kafka", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--config", str(config)],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("gateway: ready"):
            return process, f"http://127.0.0.1:{port}"
    raise RuntimeError("gateway exited before ready")


def start_openai_emulator(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """The OpenAI emulator as its own process (load on it is not the measured process's), once
    it answers; the caller terminates it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators", "openai", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/_emulator/stats")
    return process, url


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s}s")


def cpu_seconds(pid: int) -> float:
    """utime+stime of `pid` and all its live descendants, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        stats[int(entry.name)] = fields
    family = {pid}
    changed = True
    while changed:
        changed = False
        for child, parent in parents.items():
            if parent in family and child not in family:
                family.add(child)
                changed = True
    total = 0
    for member in family:
        fields = stats.get(member)
        if fields:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


async def load(url: str, concurrency: int, requests: int, *, key: str = MASTER) -> dict[str, float]:
    """Chat completions of the bench group at `concurrency`, sent with gateway key `key`."""
    body = {"model": GROUP, "messages": [{"role": "user", "content": "benchmark hello"}]}
    headers = {"authorization": f"Bearer {key}"}
    latencies: list[float] = []
    errors = 0
    remaining = requests
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": errors,
    }


def run_load(url: str, concurrency: int, requests: int) -> dict[str, float]:
    """Drive `url` from a separate process so the generator's CPU is not the server's."""
    out = subprocess.run(
        [sys.executable, __file__, "--load", url, str(concurrency), str(requests)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(name: str, pid: int, url: str, plan: list[tuple[int, int]]) -> list[dict[str, float]]:
    rows = []
    for concurrency, requests in plan:
        before = cpu_seconds(pid)
        result = run_load(url, concurrency, requests)
        result["cpu_ms"] = (cpu_seconds(pid) - before) * 1000 / requests
        result["concurrency"] = concurrency
        print(
            f"{name:<8} c={concurrency:<3} n={requests:<5} cpu/req={result['cpu_ms']:6.2f} ms "
            f"rps={result['rps']:7.1f} p50={result['p50_ms']:6.1f} ms "
            f"p99={result['p99_ms']:6.1f} ms errors={int(result['errors'])}",
            flush=True,
        )
        rows.append(result)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", default="600,2000,2000")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--load", nargs=3, metavar=("URL", "CONCURRENCY", "REQUESTS"))
    args = parser.parse_args()
    if args.load:
        url, conc, reqs = args.load
        print(json.dumps(asyncio.run(load(url, int(conc), int(reqs)))))
        return 0
    plan = list(
        zip(
            (int(c) for c in args.concurrency.split(",")),
            (int(n) for n in args.requests.split(",")),
            strict=True,
        )
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            emulator, emu = start_openai_emulator(env)
            procs.append(emulator)
            model = {
                "model_name": GROUP,
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_key": "os.environ/OPENAI_API_KEY",
                    "api_base": f"{emu}/v1",
                },
            }
            stock_cfg = Path(tmp, "stock.yaml")
            stock_cfg.write_text(
                json.dumps({"model_list": [model], "general_settings": {"master_key": MASTER}})
            )
            ours_cfg = Path(tmp, "ours.yaml")
            ours_cfg.write_text(
                json.dumps(
                    {
                        "model_list": [model],
                        "general_settings": {"custom_auth": "proxy.auth.user_api_key_auth"},
                    }
                )
            )
            server_env = {
                **env,
                "OPENAI_API_KEY": "sk-bench-provider-key-000000",
                "ANTHROPIC_API_KEY": "unused",
                "GEMINI_API_KEY": "unused",
                "LITELLM_MASTER_KEY": MASTER,
                "PYTHONPATH": str(ROOT),
            }
            servers: dict[str, tuple[int, str]] = {}
            for name, cmd in (
                ("stock", [str(BIN / "litellm"), "--config", str(stock_cfg)]),
                ("gateway", [str(BIN / "gateway"), "up", "--no-kafka", "--config", str(ours_cfg)]),
            ):
                port = free_port()
                proc = subprocess.Popen(
                    [*cmd, "--port", str(port)],
                    cwd=ROOT,
                    env=server_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                procs.append(proc)
                url = f"http://127.0.0.1:{port}"
                wait_ready(f"{url}/health/liveliness")
                servers[name] = (proc.pid, url)
            for _, url in servers.values():
                run_load(url, 4, 100)  # warm-up: imports, connection pools, caches
            # Interleaved per concurrency level, so drifting machine load hits both alike.
            results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for step in plan:
                for name, (pid, url) in servers.items():
                    results[name].extend(measure(name, pid, url, [step]))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(30)
    print("\nconcurrency  stock cpu/req  gateway cpu/req  ratio  stock rps  gateway rps")
    for stock, ours in zip(results["stock"], results["gateway"], strict=True):
        ratio = ours["cpu_ms"] / stock["cpu_ms"]
        print(
            f"{int(stock['concurrency']):>11}  {stock['cpu_ms']:10.2f} ms  "
            f"{ours['cpu_ms']:12.2f} ms  {ratio:5.2f}  {stock['rps']:9.1f}  {ours['rps']:11.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
