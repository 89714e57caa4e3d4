"""Vertex image requests: the gateway's CPU per request against LiteLLM's native `vertex_ai/`
image path, both on the same Vertex emulator, in one run.

Why it exists: the gateway serves Vertex images itself (the Vertex plugin) rather than through
LiteLLM's `vertex_ai/` image path (which drops the safety settings); this measures what that
costs in CPU. One run starts the Vertex emulator in this process, `gateway up --no-kafka` as
its own process with a service account of the emulator, and a second process that calls
`litellm.aimage_generation(model="vertex_ai/gemini-3-pro-image-preview", ...)` in a loop.

- gateway: POST /v1/images/generations on the `image-generation-fallback` task (Gemini 3 Pro
  Image on Vertex; every model group is a task clients may name), b64_json; CPU of the gateway
  process from /proc/<pid>/stat. It includes receiving the client's request, authenticating it
  and sending the answer, which the native side does not do.
- native: LiteLLM's own path in a process of its own, its CPU from `time.process_time()` around
  the loop. LiteLLM skips authentication when given an `api_base`, so it gets the full method
  URL and a bearer token minted once by google-auth (the gateway mints and caches its own).

Both at concurrency 8, interleaved twice so drifting load hits both alike; the ratio is
gateway / native.

    python bench/vertex_bench.py [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy_bench import cpu_seconds, start_gateway_up  # noqa: E402 - shared helpers

from emulators import start_emulator  # noqa: E402 - after the path set-up above

MASTER = "sk-bench-vertex-master-0001"
PROJECT = "bench-project"
MODEL = "gemini-3-pro-image-preview"
CONCURRENCY = 8


def start_gateway(
    folder: Path, vertex_url: str, account: Path
) -> tuple[subprocess.Popen[str], str]:
    config = yaml.safe_load((ROOT / "litellm_config.yaml").read_text())
    path = folder / "litellm_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        "LITELLM_MASTER_KEY": MASTER,
        "GOOGLE_APPLICATION_CREDENTIALS": str(account),
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "VERTEX_API_BASE": vertex_url,
    }
    return start_gateway_up(path, env)


async def _gateway_load(url: str, n: int) -> None:
    limit = asyncio.Semaphore(CONCURRENCY)
    headers = {"authorization": f"Bearer {MASTER}"}
    body = {
        "model": "image-generation-fallback",
        "prompt": "a linen shirt on a hanger",
        "size": "1024x1024",
        "response_format": "b64_json",
    }
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:

        async def run() -> None:
            async with limit:
                response = await client.post(f"{url}/v1/images/generations", json=body)
                response.raise_for_status()

        await asyncio.gather(*(run() for _ in range(n)))


def gateway_cpu_ms(pid: int, url: str, n: int) -> float:
    asyncio.run(_gateway_load(url, 10))  # warm-up: imports, token, connections
    before = cpu_seconds(pid)
    asyncio.run(_gateway_load(url, n))
    return (cpu_seconds(pid) - before) * 1000 / n


def native_cpu_ms(vertex_url: str, account: Path, n: int) -> float:
    """CPU per request of LiteLLM's vertex_ai/ image path, in a process of its own."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, __file__, "--native-worker", vertex_url, str(account), str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def _native_worker(vertex_url: str, account: Path, n: int) -> None:
    import litellm  # noqa: PLC0415 - only in the worker process
    from google.auth.transport.requests import Request  # noqa: PLC0415
    from google.oauth2 import service_account  # noqa: PLC0415

    credentials = service_account.Credentials.from_service_account_file(
        str(account), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(Request())
    url = (
        f"{vertex_url}/v1/projects/{PROJECT}/locations/global/publishers/google/models/"
        f"{MODEL}:generateContent"
    )
    headers = {"Authorization": f"Bearer {credentials.token}"}

    async def load(count: int) -> None:
        limit = asyncio.Semaphore(CONCURRENCY)

        async def run() -> None:
            async with limit:
                answer = await litellm.aimage_generation(
                    model=f"vertex_ai/{MODEL}",
                    prompt="a linen shirt on a hanger",
                    size="1024x1024",
                    api_base=url,
                    extra_headers=headers,
                )
                assert answer.data

        await asyncio.gather(*(run() for _ in range(count)))

    asyncio.run(load(10))  # warm-up
    before = time.process_time()
    asyncio.run(load(n))
    print((time.process_time() - before) * 1000 / n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--native-worker", nargs=3, metavar=("URL", "ACCOUNT", "N"))
    args = parser.parse_args()
    if args.native_worker:
        url, account, n = args.native_worker
        _native_worker(url, Path(account), int(n))
        return 0
    emulator = start_emulator("vertex")
    with tempfile.TemporaryDirectory(prefix="vertex-bench-") as folder:
        response = httpx.post(
            f"{emulator.url}/_emulator/vertex/service-account", json={"project": PROJECT}
        )
        response.raise_for_status()
        account = Path(folder) / "service-account.json"
        account.write_text(json.dumps(response.json()))
        account.chmod(0o600)
        gateway, url = start_gateway(Path(folder), emulator.url, account)
        try:
            rounds = []
            for _ in range(2):
                ours = gateway_cpu_ms(gateway.pid, url, args.requests)
                theirs = native_cpu_ms(emulator.url, account, args.requests)
                rounds.append((ours, theirs))
        finally:
            gateway.terminate()
            gateway.wait(30)
            emulator.stop()
    print(f"CPU per Vertex image request (1024x1024, b64, {args.requests} at concurrency 8)")
    print("| run | gateway (plugin, server side) | LiteLLM vertex_ai/ (SDK call) | ratio |")
    print("|---:|---:|---:|---:|")
    for index, (ours, theirs) in enumerate(rounds, 1):
        print(f"| {index} | {ours:.2f} ms | {theirs:.2f} ms | {ours / theirs:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
