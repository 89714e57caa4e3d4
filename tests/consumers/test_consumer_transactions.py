"""Specifications of the transactions mode (`exactly_once: transactions`): exactly one committed
result per request across SIGKILLs, nothing published by a fenced zombie, no dedupe store
touched, and the mode refused where it cannot work (unknown names, the embedded broker)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from consumer_handlers import Scripted, SlowEcho
from consumer_support import (
    REDIS_URL,
    ConsumerProcess,
    TopicReader,
    assert_exactly_once,
    await_markers,
    fast_settings,
    produce,
    request,
    survive_repeated_sigkill,
    write_config,
)

from consumers import ConsumerService, load_kafka_settings
from consumers.errors import ConsumerError
from consumers.settings import ConsumerTuning
from core.config import ConfigError

# Short sessions so a killed or frozen member is evicted quickly and its partitions move on.
TUNING = ConsumerTuning(fetch_max_wait_ms=50, session_timeout_ms=3000, heartbeat_interval_ms=300)


def _settings(broker: Any, **overrides: Any) -> Any:
    options = {"consumer": TUNING, "max_in_flight_per_partition": 4, **overrides}
    return fast_settings(broker, exactly_once="transactions", **options)


@pytest.mark.real_broker
@pytest.mark.slow
async def test_repeated_sigkill_loses_and_duplicates_nothing(
    real_kafka: Any, tmp_path: Path
) -> None:
    """Three SIGKILLs mid-stream, each followed by a restart: one committed result each."""
    await survive_repeated_sigkill(
        _settings(real_kafka), tmp_path, isolation_level="read_committed"
    )


async def _log_contains(path: Path, text: str, timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if text in await asyncio.to_thread(path.read_text):
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.mark.real_broker
@pytest.mark.slow
async def test_fenced_zombie_publishes_nothing(real_kafka: Any, tmp_path: Path) -> None:
    """A member frozen (SIGSTOP) with events in flight loses its partitions to a new member;
    woken up, it finishes them, its transactions are fenced, and no result is duplicated."""
    settings = _settings(real_kafka, partitions=2)
    config = write_config(settings, tmp_path / "config.yaml")
    events = [request(f"item {i}") for i in range(40)]
    zombie_log = tmp_path / "zombie.log"
    zombie = ConsumerProcess(
        config, handler="consumer_handlers:SlowEcho", options={"delay_ms": "1500"}, log=zombie_log
    )
    successor = ConsumerProcess(
        config,
        handler="consumer_handlers:SlowEcho",
        options={"delay_ms": "20"},
        log=tmp_path / "successor.log",
    )
    servers = real_kafka.bootstrap_servers
    await zombie.start()
    try:
        await produce(servers, settings.topics.requests.name, events)
        async with TopicReader(
            servers, settings.topics.results.name, isolation_level="read_committed"
        ) as reader:
            await reader.until(lambda rd: len(rd.records) >= 4, timeout_s=30)
            assert zombie.proc is not None
            zombie.proc.send_signal(signal.SIGSTOP)  # its in-flight handlers sleep on
            await successor.start()
            await reader.until(
                lambda rd: {r.request_id for r in rd.results()} >= {e.event_id for e in events},
                timeout_s=40,
            )
            zombie.proc.send_signal(signal.SIGCONT)
            assert await _log_contains(zombie_log, "consumer.producer_fenced", timeout_s=20)
            await await_markers(servers, settings, reader)
        assert_exactly_once(reader, events)
    finally:
        if zombie.proc is not None and zombie.proc.returncode is None:
            zombie.proc.send_signal(signal.SIGCONT)
        await zombie.stop()
        await successor.stop()


@pytest.mark.real_broker
async def test_results_wait_for_the_records_before_them(real_kafka: Any) -> None:
    """A record still running holds back the finished ones behind it on its partition: their
    results are committed with the offset that covers them all, never before."""
    settings = _settings(real_kafka, partitions=1, max_in_flight_per_partition=8)
    handler = Scripted()
    events = [request("gate"), *(request(f"item {i}") for i in range(5))]
    async with ConsumerService(settings, handler):
        await produce(real_kafka.bootstrap_servers, settings.topics.requests.name, events)
        async with TopicReader(
            real_kafka.bootstrap_servers,
            settings.topics.results.name,
            isolation_level="read_committed",
        ) as reader:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while len(handler.order) < 5 and loop.time() < deadline:
                await reader.poll()
            # Five transaction intervals after the five finished, none of them is visible.
            for _ in range(5):
                await asyncio.sleep(settings.transaction_interval_s)
                await reader.poll()
            assert (len(handler.order), reader.records) == (5, [])
            handler.gate.set()
            await reader.until(lambda rd: len(rd.records) >= len(events), timeout_s=20)
    assert_exactly_once(reader, events)


@pytest.mark.real_broker
async def test_transactions_mode_asks_no_dedupe_store(real_kafka: Any) -> None:
    """Results are committed without a single key written to the dedupe namespace."""
    settings = _settings(real_kafka)
    events = [request(f"item {i}") for i in range(50)]
    async with ConsumerService(settings, SlowEcho()):
        await produce(real_kafka.bootstrap_servers, settings.topics.requests.name, events)
        async with TopicReader(
            real_kafka.bootstrap_servers,
            settings.topics.results.name,
            isolation_level="read_committed",
        ) as reader:
            await reader.until(lambda rd: len(rd.records) >= len(events), timeout_s=30)
    assert_exactly_once(reader, events)
    client = aioredis.Redis.from_url(REDIS_URL[0])
    try:
        keys = [key async for key in client.scan_iter(f"{settings.dedupe_namespace}:*")]
    finally:
        await client.aclose()
    assert keys == []


def test_unknown_exactly_once_mode_is_rejected_naming_the_field(tmp_path: Path) -> None:
    """A mode other than dedupe or transactions fails at start-up naming `exactly_once`."""
    path = tmp_path / "c.yaml"
    path.write_text("gateway_settings:\n  kafka:\n    exactly_once: kafka\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="exactly_once"):
        load_kafka_settings(path)


async def test_embedded_broker_is_refused(kafka_broker: Any) -> None:
    """Transactions mode refuses librdkafka's mock, whose readers see aborted transactions."""
    service = ConsumerService(_settings(kafka_broker), SlowEcho())
    with pytest.raises(ConsumerError, match="real Kafka broker"):
        await service.start()
