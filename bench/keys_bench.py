"""What key resolution costs per request at steady state: the gateway with its database
(a user's gateway key, that user's stored provider key) versus the same gateway with a fixed
environment key and the master key, against one emulator.

Why it exists: resolution runs on every attempt, so the claim is that caching keeps it off the
hot path (at most 0.2 ms of CPU per request). One run starts an OpenAI emulator and two
`gateway up --no-kafka` processes from the same config, one with an SQLite database and one
without; the keyed one gets a user, a gateway key and the user's OpenAI key through the admin
routes, as a deployment would. Each is driven in alternating rounds by a separate load process;
the script prints server CPU ms/request (from /proc), req/s and p50 per round, the median
difference, and, for scale, the in-process cost of one cached authenticate + resolve.

    python bench/keys_bench.py [--rounds 6] [--requests 1500] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from proxy_bench import BIN, ROOT, cpu_seconds, free_port, load, start_openai_emulator, wait_ready

sys.path.insert(0, str(ROOT))
from database import Sealer

MASTER = "sk-bench-master-key-0002"
GROUP = "bench"
BUDGET_MS = 0.2


def run_load(url: str, key: str, concurrency: int, requests: int) -> dict[str, float]:
    """Drive `url` from a separate process so the generator's CPU is not the server's."""
    out = subprocess.run(
        [sys.executable, __file__, "--load", url, key, str(concurrency), str(requests)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _run_loads(
    targets: dict[str, tuple[str, str]], concurrency: int, requests: int
) -> dict[str, dict[str, float]]:
    """Drive every target at once, each from its own load process."""
    running = {
        name: subprocess.Popen(
            [sys.executable, __file__, "--load", url, key, str(concurrency), str(requests)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, (url, key) in targets.items()
    }
    results = {}
    for name, proc in running.items():
        out, _ = proc.communicate(timeout=600)
        results[name] = json.loads(out.strip().splitlines()[-1])
    return results


async def _in_process_cost(calls: int) -> float:
    """Microseconds per cached authenticate + resolve, on a real SQLite database."""
    from database import Database, KeyRecords  # noqa: PLC0415
    from proxy.auth import Authenticator  # noqa: PLC0415
    from proxy.keys import ChangeWatch, KeyResolver  # noqa: PLC0415
    from proxy.routing import Deployment  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite:///{tmp}/bench.db")
        await database.start()
        records = KeyRecords(database, Sealer([Sealer.generate()]))
        await records.check_sealer()
        await records.create_user("bench-user", "user")
        await records.set_provider_key("bench-user", "openai", "sk-bench-user-key-0000000000")
        issued = await records.issue_gateway_key("bench-user")
        watch = ChangeWatch(records, refresh_s=0.5)
        resolver = KeyResolver({}, records, watch=watch)
        auth = Authenticator(MASTER, source=records, watch=watch)
        deployment = Deployment(
            group=GROUP,
            provider="openai",
            model="openai/gpt-4o",
            key_env=None,
            literal_key=None,
            params={},
        )
        header = f"Bearer {issued.key}"
        for _ in range(100):
            identity = await auth.authenticate(header)
            await resolver.resolve(deployment, identity.user_id)
        started = time.perf_counter()
        for _ in range(calls):
            identity = await auth.authenticate(header)
            await resolver.resolve(deployment, identity.user_id)
        elapsed = time.perf_counter() - started
        await database.stop()
    return elapsed / calls * 1e6


def _start(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/health/liveliness")
    return proc, url


def _provision(url: str) -> str:
    """A user, their gateway key and their OpenAI key, through the admin routes."""
    admin = httpx.Client(base_url=url, headers={"authorization": f"Bearer {MASTER}"}, timeout=30)
    with admin:
        admin.post("/gateway/v1/users", json={"user_id": "bench-user"}).raise_for_status()
        issued = admin.post("/gateway/v1/users/bench-user/gateway-keys")
        issued.raise_for_status()
    key: str = issued.json()["key"]
    user = httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30)
    with user:
        stored = user.put("/gateway/v1/keys/openai", json={"key": "sk-bench-user-key-000000"})
        stored.raise_for_status()
    return key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--load", nargs=4, metavar=("URL", "KEY", "CONCURRENCY", "REQUESTS"))
    args = parser.parse_args()
    if args.load:
        url, key, conc, reqs = args.load
        print(json.dumps(asyncio.run(load(url, int(conc), int(reqs), key=key))))
        return 0
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[bytes]] = []
    cpu: dict[str, list[float]] = {"env-key": [], "db-keys": []}
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
            general = {"custom_auth": "proxy.auth.user_api_key_auth"}
            configs = {}
            for name, keys in (
                ("env-key", {"sqlite_path": None}),
                ("db-keys", {"database_url": f"sqlite:///{tmp}/gateway.db"}),
            ):
                path = Path(tmp, f"{name}.yaml")
                data = {"model_list": [model], "general_settings": general}
                data["gateway_settings"] = {"keys": keys}
                path.write_text(json.dumps(data))
                configs[name] = path
            server_env = {
                **env,
                "OPENAI_API_KEY": "sk-bench-provider-key-000000",
                "ANTHROPIC_API_KEY": "unused",
                "GEMINI_API_KEY": "unused",
                "LITELLM_MASTER_KEY": MASTER,
                "GATEWAY_KEY_ENCRYPTION_KEY": Sealer.generate(),
                "PYTHONPATH": str(ROOT),
            }
            servers: dict[str, tuple[int, str, str]] = {}
            for name, config in configs.items():
                cmd = [str(BIN / "gateway"), "up", "--no-kafka", "--config", str(config)]
                proc, url = _start(cmd, server_env)
                procs.append(proc)
                key = MASTER if name == "env-key" else _provision(url)
                servers[name] = (proc.pid, url, key)
            for _, url, key in servers.values():
                run_load(url, key, 4, 200)  # warm-up: imports, pools, caches
            for round_ in range(1, args.rounds + 1):
                # Both driven at once: whatever else loads the machine loads both alike.
                before = {name: cpu_seconds(pid) for name, (pid, _, _) in servers.items()}
                results = _run_loads(
                    {name: (url, key) for name, (_, url, key) in servers.items()},
                    args.concurrency,
                    args.requests,
                )
                for name, (pid, _, _) in servers.items():
                    per_request = (cpu_seconds(pid) - before[name]) * 1000 / args.requests
                    cpu[name].append(per_request)
                    result = results[name]
                    print(
                        f"round {round_} {name:<8} c={args.concurrency} n={args.requests} "
                        f"cpu/req={per_request:6.3f} ms rps={result['rps']:7.1f} "
                        f"p50={result['p50_ms']:6.1f} ms errors={int(result['errors'])}",
                        flush=True,
                    )
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(30)
    deltas = [k - e for k, e in zip(cpu["db-keys"], cpu["env-key"], strict=True)]
    delta = statistics.median(deltas)
    micro = asyncio.run(_in_process_cost(20_000))
    print(
        f"\nmedian cpu/req: env-key {statistics.median(cpu['env-key']):.3f} ms, "
        f"db-keys {statistics.median(cpu['db-keys']):.3f} ms; "
        f"difference {delta:+.3f} ms (budget {BUDGET_MS} ms): "
        f"{'PASS' if delta <= BUDGET_MS else 'FAIL'}"
    )
    print(f"in-process cached authenticate + resolve: {micro:.1f} us per request")
    return 0 if delta <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
