"""`gateway consume`, `gateway topics ensure` and `gateway send` as real processes."""

from __future__ import annotations

import asyncio
import json
import queue
import re
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from gateway_support import GATEWAY, ROOT, base_env, run_gateway

_TOPICS = {
    "requests": {"name": "cli-requests", "partitions": 3},
    "results": {"name": "cli-results", "partitions": 2},
    "status": {"name": "cli-status", "partitions": 1},
    "dead_letters": {"name": "cli-dead-letters", "partitions": 1},
}


def _write_kafka_config(path: Path, **kafka: Any) -> Path:
    """A config holding only gateway_settings.kafka, with in-process dedupe and rate limits."""
    section = {"dedupe_redis_url": None, "rate_limit_redis_url": None, **kafka}
    path.write_text(yaml.safe_dump({"gateway_settings": {"kafka": section}}), encoding="utf-8")
    return path


async def _partitions(servers: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if not t["error_code"]}


class ConsumeProcess:
    """`gateway consume --kafka mock` with a test handler, up to its "consumer ready" line."""

    def __init__(self, config: Path) -> None:
        handler = ["--handler", "consumer_handlers:SlowEcho"]
        self.process = subprocess.Popen(
            [str(GATEWAY), "consume", "--kafka", "mock", "--config", str(config), *handler],
            cwd=ROOT,
            env=base_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._pump, args=(self.process.stderr,), daemon=True).start()
        self.ready = self.process.stdout.readline().strip()
        self.servers = self._broker_address()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.stderr.put(line.rstrip("\n"))
        self.stderr.put(None)

    def _broker_address(self) -> str:
        seen = []
        while (line := self.stderr.get(timeout=60)) is not None:
            seen.append(line)
            if match := re.match(r"^kafka: embedded mock broker on (\S+) ", line):
                return match.group(1)
        raise AssertionError(f"no broker line from gateway consume: {seen[-20:]}")


@pytest.fixture(scope="module")
def consume(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsumeProcess]:
    """One `gateway consume` that started its own mock broker, stopped with SIGTERM."""
    path = tmp_path_factory.mktemp("consume") / "c.yaml"
    process = ConsumeProcess(_write_kafka_config(path, topics=_TOPICS, group_id="g-cli"))
    yield process
    process.process.send_signal(signal.SIGTERM)
    process.process.wait(timeout=30)


def test_consume_announces_readiness_with_its_group(consume: ConsumeProcess) -> None:
    """The first line on stdout says the consumer is ready and names its group."""
    assert consume.ready == "consumer ready group=g-cli"


async def test_consume_creates_the_configured_topics_on_the_broker_it_starts(
    consume: ConsumeProcess,
) -> None:
    """Without a cluster, consume starts a broker holding every configured topic as sized."""
    names = [topic["name"] for topic in _TOPICS.values()]
    found = await _partitions(consume.servers, names)
    assert found == {t["name"]: t["partitions"] for t in _TOPICS.values()}


async def test_send_waits_for_the_result(consume: ConsumeProcess, tmp_path: Path) -> None:
    """`send --wait` publishes a request with an image and prints the consumer's result."""
    config = _write_kafka_config(tmp_path / "c.yaml", topics=_TOPICS)
    image = tmp_path / "look.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 16)
    code, out, err = await run_gateway(
        "send",
        "--config",
        str(config),
        "--bootstrap",
        consume.servers,
        "--task",
        "captioning",
        "--text",
        "red dress",
        "--image",
        str(image),
        "--wait",
        "--timeout",
        "30",
    )
    assert code == 0, err
    sent_id = out.splitlines()[0].removeprefix("sent ")
    result = json.loads(out.splitlines()[-1])
    assert (result["type"], result["request_id"]) == ("completion.succeeded", sent_id)
    assert (result["task"], result["provider"]) == ("captioning", "echo")


async def test_topics_ensure_creates_missing_topics_idempotently(
    kafka_broker: Any, tmp_path: Path
) -> None:
    """The first run creates every configured topic; a second run finds them all existing."""
    tag = uuid.uuid4().hex[:8]
    topics = {role: {**spec, "name": f"{spec['name']}-{tag}"} for role, spec in _TOPICS.items()}
    config = _write_kafka_config(
        tmp_path / "c.yaml", topics=topics, bootstrap_servers=kafka_broker.bootstrap_servers
    )
    first = await run_gateway("topics", "ensure", "--config", str(config))
    second = await run_gateway("topics", "ensure", "--config", str(config))
    assert first[0] == 0, first[2]
    assert first[1].count("created") == 4
    assert second[0] == 0
    assert second[1].count("exists") == 4
    found = await _partitions(kafka_broker.bootstrap_servers, [topics["requests"]["name"]])
    assert found == {topics["requests"]["name"]: 3}


async def test_topics_ensure_without_a_cluster_says_how_to_name_one(tmp_path: Path) -> None:
    """With no cluster named anywhere, topics ensure exits 2 and lists the three ways."""
    code, _, err = await run_gateway(
        "topics", "ensure", "--config", str(_write_kafka_config(tmp_path / "c.yaml"))
    )
    assert code == 2
    assert "--bootstrap, KAFKA_BOOTSTRAP_SERVERS or kafka.bootstrap_servers" in err


async def test_consume_refuses_transactions_on_the_mock_broker(tmp_path: Path) -> None:
    """`consume --kafka mock` in transactions mode exits 2 before starting anything."""
    config = _write_kafka_config(tmp_path / "c.yaml", exactly_once="transactions")
    code, _, err = await asyncio.wait_for(
        run_gateway("consume", "--kafka", "mock", "--config", str(config)), 60
    )
    assert code == 2
    assert "needs a real Kafka cluster" in err
