"""`gateway up --workers 2` as a real process: two proxy processes serve one port through the
official openai SDK, share the gateway database, a killed worker is restarted while the port
keeps serving, and SIGTERM leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from child_process import free_port
from gateway_support import GATEWAY, ROOT, base_env, child_pids, run_gateway
from provider_setup import write_config

MASTER_KEY = "sk-gw-workers-test-master-key"
_WORKERS_LINE = r"^proxy: 2 worker processes serve port (\d+) \(pids (\d+), (\d+);"
# A worker imports LiteLLM before it serves: slow on two busy cores.
_START_S = 150
# Fresh connections per request: SO_REUSEPORT spreads connections, not requests, over workers.
_SPREAD = 40


class Running:
    """A `gateway up --no-kafka --workers 2` child and the lines it printed up to ready."""

    def __init__(self, folder: Path) -> None:
        config = write_config(folder / "litellm_config.yaml")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stderr = (folder / "stderr.log").open("wb")
        self.stderr_path = folder / "stderr.log"
        command = [str(GATEWAY), "up", "--no-kafka", "--workers", "2", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--config", str(config)],
            cwd=ROOT,
            env=base_env(LITELLM_MASTER_KEY=MASTER_KEY),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        self.lines: list[str] = []
        while (line := lines.get(timeout=_START_S)) is not None:
            self.lines.append(line)
            if line.startswith("gateway: ready"):
                break
        else:
            raise RuntimeError(f"gateway exited before ready: {self.stderr_path.read_text()}")

    def _pump(self, lines: queue.Queue[str | None]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def workers_line(self) -> re.Match[str]:
        for line in self.lines:
            if match := re.search(_WORKERS_LINE, line):
                return match
        raise AssertionError(f"no workers line in {self.lines}")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self._stderr.close()
        return code


def _served_by(url: str, key: str, requests: int) -> list[int]:
    """The worker pid of each of `requests` chat completions, each on a new connection."""
    pids = []
    for _ in range(requests):
        # No keep-alive: every request is a new connection the kernel places afresh.
        transport = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
        with openai.OpenAI(base_url=f"{url}/v1", api_key=key, http_client=transport) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="captioning", messages=[{"role": "user", "content": "which worker?"}]
            )
        assert raw.parse().choices[0].message.content
        pids.append(int(raw.headers["x-gateway-worker"]))
    return pids


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """`gateway up --no-kafka --workers 2` on the embedded default, for the whole module."""
    gateway = Running(tmp_path_factory.mktemp("workers"))
    yield gateway
    if gateway.process.poll() is None:
        gateway.terminate()


@pytest.mark.timeout(_START_S + 30)
def test_start_up_lines_name_both_workers(running: Running) -> None:
    """The start-up lines say two workers serve the port, naming pids that are children."""
    match = running.workers_line()
    assert int(match[1]) == running.port
    assert {int(match[2]), int(match[3])} <= child_pids(running.process.pid)


def test_requests_reach_both_workers(running: Running) -> None:
    """Chat completions through the openai SDK are answered by both worker processes."""
    match = running.workers_line()
    assert set(_served_by(running.url, MASTER_KEY, _SPREAD)) == {int(match[2]), int(match[3])}


def test_a_key_issued_through_one_worker_is_accepted_by_both(running: Running) -> None:
    """A gateway key issued by whichever worker takes the request authenticates on every
    worker, because the workers share the gateway database."""
    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    base = f"{running.url}/gateway/v1"
    with httpx.Client(headers=admin, timeout=30) as client:
        client.post(f"{base}/users", json={"user_id": "ana", "role": "user"}).raise_for_status()
        issued = client.post(f"{base}/users/ana/gateway-keys")
        issued.raise_for_status()
    match = running.workers_line()
    served = _served_by(running.url, issued.json()["key"], _SPREAD)
    assert set(served) == {int(match[2]), int(match[3])}


@pytest.mark.timeout(_START_S + 120)
def test_a_killed_worker_is_restarted_while_the_port_serves(running: Running) -> None:
    """SIGKILL of one worker: the port keeps answering, and a new worker process takes its
    place under the same parent and serves."""
    match = running.workers_line()
    victim, survivor = int(match[2]), int(match[3])
    os.kill(victim, signal.SIGKILL)
    # The survivor answers while the victim restarts (the SDK retries a dropped connection).
    answered = set(_served_by(running.url, MASTER_KEY, 5))
    assert answered <= {survivor, *child_pids(running.process.pid)}
    deadline = time.monotonic() + _START_S
    new: set[int] = set()
    while not new and time.monotonic() < deadline:
        new = set(_served_by(running.url, MASTER_KEY, 10)) - {victim, survivor}
        time.sleep(0.5)
    assert new, running.stderr_path.read_text()[-3000:]
    assert new <= child_pids(running.process.pid)
    assert victim not in child_pids(running.process.pid)
    assert "proxy_worker_exited" in running.stderr_path.read_text()


def test_sigterm_stops_every_worker_and_closes_the_port(running: Running) -> None:
    """SIGTERM makes `gateway up --workers 2` exit 0 with no child left and the port closed."""
    children = child_pids(running.process.pid)
    assert len(children) >= 2
    assert running.terminate() == 0
    assert not {pid for pid in children if Path(f"/proc/{pid}").exists()}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/health/liveliness")


@pytest.mark.parametrize("value", ["0", "many"])
def test_a_bad_worker_count_is_a_configuration_error(value: str) -> None:
    """`GATEWAY_WORKERS` that is not a whole number from 1 up stops `gateway up` with exit 2
    naming the variable, before anything starts."""
    env = base_env(LITELLM_MASTER_KEY=MASTER_KEY, GATEWAY_WORKERS=value)
    code, _, err = asyncio.run(run_gateway("up", "--no-kafka", env=env))
    assert code == 2
    assert "GATEWAY_WORKERS" in err
