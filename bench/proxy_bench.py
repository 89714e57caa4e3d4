"""CPU per request and throughput of the gateway proxy, at 1 and 2 worker processes, versus stock
LiteLLM proxy, against one emulator.

Why it exists: the gateway's fast path and `gateway up --workers N` are justified by measured
claims (gateway CPU per request a fraction of stock LiteLLM's; req/s at 2 workers close to
twice 1 worker's). One run starts an OpenAI emulator process, stock `litellm --config` and
`gateway up --workers 1` and `--workers 2` as separate processes pointed at it, drives each in
turn with a separate load-generator process at several concurrencies, and prints CPU
ms/request (from /proc/<pid>/stat of the server process and its children: for the gateway the
supervisor plus its workers), req/s, p50/p95/p99 latency, errors per class, and the ratios.
A load step that fails reports its errors and the run carries on. Last, in this process, the
CPU the request checks cost the fast path per request (the OpenAI contract, then the provider
limits of the deployment), for the bench's own request and for typical task requests, beside
the gateway's whole CPU per request: the claim is at most 0.1 ms.

    python bench/proxy_bench.py [--requests 600,2000,2000] [--concurrency 1,16,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def start_gateway_up(
    config: Path, env: dict[str, str], args: Sequence[str] = ()
) -> tuple[subprocess.Popen[str], str]:
    """`gateway up --no-kafka --config config *args` with `env` over the cleared environment,
    once it prints its ready line (with workers: once every worker serves); the caller
    terminates it."""
    environ = {k: v for k, v in os.environ.items() if k not in GATEWAY_CLEARED}
    environ |= {"PYTHONPATH": str(ROOT), **env}
    port = free_port()
    command = [str(BIN / "gateway"), "up", "--no-kafka", "--port", str(port), *args]
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
            # Keep reading: a full pipe would stall the gateway at its next print.
            threading.Thread(target=process.stdout.read, daemon=True).start()
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
        found = stats.get(member)
        if found:
            total += int(found[11]) + int(found[12])
    return total / ticks


# Connections per load-generator client (see `load`).
_WORKERS_PER_CLIENT = 4


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def _raise_fd_limit(needed: int) -> None:
    """Lift this process's open-file limit to `needed` when the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def load(url: str, concurrency: int, requests: int, *, key: str = MASTER) -> dict[str, Any]:
    """Chat completions of the bench group at `concurrency`, sent with gateway key `key`.

    A request that fails (a transport error or a non-200 answer) is counted under its class
    (`ReadTimeout`, `http_503`) and the load goes on: a step reports its errors, it never
    raises. Latencies are of the answered requests.
    """
    body = {"model": GROUP, "messages": [{"role": "user", "content": "benchmark hello"}]}
    headers = {"authorization": f"Bearer {key}"}
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    # The first message of each error class, to say what it was.
    samples: dict[str, str] = {}
    remaining = requests
    _raise_fd_limit(4 * concurrency + 256)
    # A connect timeout well under the read timeout, so a refused backlog shows as its own class.
    timeout = httpx.Timeout(60.0, connect=10.0, pool=None)
    # Several small clients rather than one with `concurrency` connections: httpcore's pool
    # scans its connections on every request, which made the generator itself cost ~5 ms of
    # CPU per request at concurrency 64 and cap every server's req/s. Each client holds a
    # connection for each of its workers, so no request waits for the pool.
    per_client = min(concurrency, _WORKERS_PER_CLIENT)
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    clients = [
        httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits)
        for _ in range(-(-concurrency // per_client))
    ]

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            try:
                response = await client.post("/v1/chat/completions", json=body, headers=headers)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                samples.setdefault(type(exc).__name__, str(exc)[:160])
                continue
            if response.status_code != 200:
                errors[f"http_{response.status_code}"] += 1
                samples.setdefault(f"http_{response.status_code}", response.text[:160])
                continue
            latencies.append(time.perf_counter() - start)

    try:
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(clients[i // per_client]) for i in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    latencies.sort()
    return {
        # The load generator's own cost: on a small machine it competes with the server.
        "loader_cpu_ms": cpu * 1000 / requests,
        "rps": len(latencies) / elapsed,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p95_ms": _percentile(latencies, 0.95) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "errors": sum(errors.values()),
        "error_classes": dict(errors),
        "error_samples": samples,
    }


# A step that takes longer than this is abandoned and reported, not waited for.
_STEP_TIMEOUT_S = 900


def run_load(url: str, concurrency: int, requests: int) -> dict[str, Any]:
    """Drive `url` from a separate process so the generator's CPU is not the server's.

    A load process that dies or hangs is reported as a failed step (`failed`: why), so one bad
    step never ends the run."""
    command = [sys.executable, __file__, "--load", url, str(concurrency), str(requests)]
    try:
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=_STEP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"the load process ran over {_STEP_TIMEOUT_S} s"}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        return {"failed": f"the load process failed: {tail[:300]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure(
    name: str, pid: int, url: str, plan: list[tuple[int, int]], *, emulator: int
) -> list[dict[str, Any]]:
    rows = []
    for concurrency, requests in plan:
        before, emulator_before = cpu_seconds(pid), cpu_seconds(emulator)
        result = run_load(url, concurrency, requests)
        result["concurrency"] = concurrency
        if "failed" in result:
            print(f"{name:<10} c={concurrency:<3} n={requests:<5} FAILED: {result['failed']}")
            rows.append(result)
            continue
        result["cpu_ms"] = (cpu_seconds(pid) - before) * 1000 / requests
        result["emulator_cpu_ms"] = (cpu_seconds(emulator) - emulator_before) * 1000 / requests
        errors = ", ".join(f"{k}={v}" for k, v in sorted(result["error_classes"].items()))
        print(
            f"{name:<10} c={concurrency:<3} n={requests:<5} cpu/req={result['cpu_ms']:6.2f} ms "
            f"rps={result['rps']:7.1f} p50={result['p50_ms']:6.1f} p95={result['p95_ms']:6.1f} "
            f"p99={result['p99_ms']:6.1f} ms errors={int(result['errors'])}"
            + (f" ({errors})" if errors else "")
            + f" | emulator {result['emulator_cpu_ms']:.2f} ms, loader "
            f"{result['loader_cpu_ms']:.2f} ms/req",
            flush=True,
        )
        for kind, sample in sorted(result["error_samples"].items()):
            print(f"{'':<10} first {kind}: {sample!r}", flush=True)
        rows.append(result)
    return rows


def _cell(row: dict[str, Any], key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "failed"


def _ratio(top: dict[str, Any], bottom: dict[str, Any], key: str) -> str:
    if key not in top or key not in bottom or not bottom[key]:
        return "n/a"
    return f"{top[key] / bottom[key]:.2f}"


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    """The summary tables: CPU per request with its ratio to stock, and req/s with the
    2-worker / 1-worker ratio, per concurrency."""
    stock, one, two = results["stock"], results["gateway-1w"], results["gateway-2w"]
    print("\nCPU ms/request (gateway: supervisor + workers) and ratio to stock")
    print("concurrency   stock  gateway-1w  ratio  gateway-2w  ratio")
    for s, g1, g2 in zip(stock, one, two, strict=True):
        print(
            f"{int(s['concurrency']):>11}  {_cell(s, 'cpu_ms', '6.2f')}  "
            f"{_cell(g1, 'cpu_ms', '10.2f')}  {_ratio(g1, s, 'cpu_ms'):>5}  "
            f"{_cell(g2, 'cpu_ms', '10.2f')}  {_ratio(g2, s, 'cpu_ms'):>5}"
        )
    print("\nreq/s, and 2 workers / 1 worker")
    print("concurrency   stock  gateway-1w  gateway-2w  2w/1w")
    for s, g1, g2 in zip(stock, one, two, strict=True):
        print(
            f"{int(s['concurrency']):>11}  {_cell(s, 'rps', '6.1f')}  {_cell(g1, 'rps', '10.1f')}"
            f"  {_cell(g2, 'rps', '10.1f')}  {_ratio(g2, g1, 'rps'):>5}"
        )


def _typical_requests() -> dict[str, dict[str, Any]]:
    system = {"role": "system", "content": "You are a fashion stylist. Answer briefly."}
    photo = {
        "role": "user",
        "content": [
            {"type": "text", "text": "Caption this product photo in one sentence."},
            {"type": "image_url", "image_url": {"url": "https://cdn.example.com/look/4711.jpg"}},
        ],
    }
    return {
        "the bench's request": {
            "model": GROUP,
            "messages": [{"role": "user", "content": "benchmark hello"}],
        },
        "system + user, temperature, max_tokens": {
            "model": GROUP,
            "messages": [system, {"role": "user", "content": "An outfit around white sneakers?"}],
            "temperature": 0.7,
            "max_tokens": 300,
        },
        "system + user with an image URL": {"model": GROUP, "messages": [system, photo]},
    }


def validation_cpu(config: dict[str, Any], calls: int = 20_000) -> dict[str, float]:
    """CPU microseconds per request of the fast path's checks: `RequestContract.chat`, then
    `Limits.narrow` on the bench's route (as `_serve` runs them)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # read at LiteLLM's import
    from proxy.contract import RequestContract  # noqa: PLC0415 - bench process only
    from proxy.limits import Limits  # noqa: PLC0415
    from proxy.routing import RoutingTable  # noqa: PLC0415

    routing = RoutingTable.from_config(config, {"OPENAI_API_KEY": "sk-bench"})
    route = routing.get(GROUP)
    assert route is not None
    contract, limits = RequestContract(), Limits.from_routing(routing)
    costs = {}
    for name, request in _typical_requests().items():
        # The limits see the provider's params, as the fast path hands them (no `model`).
        params = {k: v for k, v in request.items() if k != "model"}
        for _ in range(200):  # warm-up: caches, the tokenizer-free estimate path
            contract.chat(request)
            limits.narrow(route, params)
        started = time.process_time()
        for _ in range(calls):
            contract.chat(request)
            limits.narrow(route, params)
        costs[name] = (time.process_time() - started) / calls * 1e6
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", default="600,2000,2000")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--load", nargs=3, metavar=("URL", "CONCURRENCY", "REQUESTS"))
    parser.add_argument(
        "--checks-only", action="store_true", help="only the request checks' CPU, no servers"
    )
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
    if args.checks_only:
        report_checks(validation_cpu(_bench_config("http://127.0.0.1:9/v1")), None)
        return 0
    procs: list[subprocess.Popen[Any]] = []
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            emulator, emu = start_openai_emulator(env)
            procs.append(emulator)
            ours = _bench_config(f"{emu}/v1")
            model = ours["model_list"][0]
            stock_cfg = Path(tmp, "stock.yaml")
            stock_cfg.write_text(
                json.dumps({"model_list": [model], "general_settings": {"master_key": MASTER}})
            )
            ours_cfg = Path(tmp, "ours.yaml")
            # The gateway database as the default config has it (several workers share it).
            ours_cfg.write_text(json.dumps(ours))
            server_env = {
                "OPENAI_API_KEY": "sk-bench-provider-key-000000",
                "ANTHROPIC_API_KEY": "unused",
                "GEMINI_API_KEY": "unused",
                "LITELLM_MASTER_KEY": MASTER,
            }
            servers: dict[str, tuple[int, str]] = {}
            port = free_port()
            stock = subprocess.Popen(
                [str(BIN / "litellm"), "--config", str(stock_cfg), "--port", str(port)],
                cwd=ROOT,
                env={**env, **server_env, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(stock)
            servers["stock"] = (stock.pid, f"http://127.0.0.1:{port}")
            wait_ready(f"{servers['stock'][1]}/health/liveliness", timeout_s=180)
            for workers in (1, 2):
                gateway, url = start_gateway_up(ours_cfg, server_env, ["--workers", str(workers)])
                procs.append(gateway)
                servers[f"gateway-{workers}w"] = (gateway.pid, url)
            for _, url in servers.values():
                run_load(url, 4, 100)  # warm-up: imports, connection pools, caches
            # Interleaved per concurrency level, so drifting machine load hits all alike.
            results = {name: [] for name in servers}
            for step in plan:
                for name, (pid, url) in servers.items():
                    results[name].extend(measure(name, pid, url, [step], emulator=emulator.pid))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(60)
    report(results)
    one = [row for row in results.get("gateway-1w", []) if "cpu_ms" in row]
    report_checks(validation_cpu(ours), one[0]["cpu_ms"] if one else None)
    return 0


def _bench_config(api_base: str) -> dict[str, Any]:
    """The gateway's config: the bench group on the emulator, the database as the default
    config has it (several workers share it)."""
    model = {
        "model_name": GROUP,
        "litellm_params": {
            "model": "openai/gpt-4o",
            "api_key": "os.environ/OPENAI_API_KEY",
            "api_base": api_base,
        },
    }
    return {
        "model_list": [model],
        "general_settings": {"custom_auth": "proxy.auth.user_api_key_auth"},
        "gateway_settings": {"keys": {"sqlite_path": "gateway.db"}},
    }


def report_checks(costs: dict[str, float], gateway_cpu_ms: float | None) -> None:
    """The request checks' CPU per request against the 0.1 ms claim, and their share of the
    gateway's CPU per request at concurrency 1 (1 worker) when the load steps ran."""
    print("\nrequest checks (contract + provider limits), CPU per request")
    for name, us in costs.items():
        share = f"  {us / 1000 / gateway_cpu_ms:5.1%} of gateway CPU/req" if gateway_cpu_ms else ""
        verdict = "within" if us <= 100 else "OVER"
        print(f"  {name:<40} {us:7.1f} us  ({verdict} 100 us){share}")


if __name__ == "__main__":
    sys.exit(main())
