"""Processes, brokers and loads shared by bench/kafka_bench.py's measurements.

Why a module of its own: what every measurement needs around it (a fresh process per measured
part, a broker, preloaded or paced request records, the results read back after the run) is
kept apart from what is measured, so each stays small enough to read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import msgspec
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from core.logging import configure_logging
from schemas import ChatMessage, CompletionRequested, build_headers
from services import KafkaCluster

__all__ = [
    "broker",
    "consume_only",
    "create_topics",
    "in_process",
    "paced_load",
    "preload",
    "result_times",
    "run",
]

PAYLOAD_TEXT = "x" * 830  # with the envelope, a request is ~1 KB
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def run(coro_fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
    # Production consumers run on uvloop (see consumers.cli); every bench process does too.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro_fn(*args))


def _child(queue: Any, coro_fn: Any, args: tuple[Any, ...]) -> None:
    configure_logging(json=True, level="WARNING")
    # aiokafka warns of every produce it retries; Kafka 4 answers some transactional ones
    # NOT_ENOUGH_REPLICAS (see consumers.publisher), which would bury the figures.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    queue.put(run(coro_fn, *args))


def start_process(coro_fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
    """Start `coro_fn(*args)` in a fresh spawned process; returns (process, result queue)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, coro_fn, args))
    proc.start()
    return proc, queue


def in_process(coro_fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
    """Run `coro_fn(*args)` in a fresh spawned process and return its result."""
    proc, queue = start_process(coro_fn, *args)
    result = queue.get()
    proc.join()
    return result


def _requests(n: int) -> list[Record]:
    encoder = msgspec.json.Encoder()
    records = []
    for i in range(n):
        event = CompletionRequested(
            event_id=str(uuid.uuid4()),
            subject=f"s{i}",
            task="captioning",
            messages=[ChatMessage(role="user", content=PAYLOAD_TEXT)],
        )
        headers = build_headers(
            event_id=event.event_id, event_type="completion.requested", source="urn:bench"
        )
        records.append((event.event_id.encode(), encoder.encode(event), headers))
    return records


async def create_topics(
    servers: str, names: list[str], partitions: int, configs: dict[str, str] | None = None
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, partitions, 1, topic_configs=configs or {}) for n in names]
        )
    finally:
        await admin.close()


async def preload(servers: str, topic: str, n: int) -> float:
    """Produce `n` ~1 KB request records; returns the produce-only rate."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=5, max_batch_size=256_000)
    await producer.start()
    records = _requests(n)
    started = time.perf_counter()
    futures = [await producer.send(topic, v, key=k, headers=h) for k, v, h in records]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    return n / elapsed


async def consume_only(servers: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4_000_000,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    while seen < n:
        batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
        seen += sum(len(records) for records in batches.values())
    elapsed = time.perf_counter() - started
    await consumer.stop()
    return n / elapsed


async def paced_load(
    servers: str, topic: str, n: int, rate: int, warmup: int = 0
) -> dict[str, Any]:
    """Offer `rate` requests per second; returns the rate achieved and each key's send time,
    both for the records after the first `warmup` (sent on the same schedule, not measured).

    Paced in 5 ms ticks rather than one wake-up per record, so the load process takes as little
    of the 2 cores from the measured one as it can. Each record's CreateTime is set here, and the
    same millisecond is returned, so latencies need not read the requests back (at 5,000/s the
    embedded broker's ~5 MiB per partition would no longer hold them all).
    """
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=1)
    await producer.start()
    # The topic's metadata before the clock starts: the first send() would otherwise wait for
    # it with the first records already stamped, then send the backlog at once, a start-up
    # stall and burst of the load's own that no running producer makes.
    await producer.partitions_for(topic)
    records = _requests(n)
    # No collection while the load runs: the records, their send futures and stamps are all
    # kept to the end, so each collection would walk more of them and stall the sends (the
    # load then bursts to catch up); what this short-lived process allocates is freed at exit.
    gc.collect()
    gc.freeze()
    gc.disable()
    sent_at: dict[bytes, int] = {}
    started = time.perf_counter()
    measured_from = started + warmup / rate
    futures = []
    sent = 0
    behind_s = 0.0  # how far the measured sends fell behind the schedule, at worst
    while sent < n:
        now = time.perf_counter()
        due = min(n, int((now - started) * rate) + 1)
        if sent >= warmup:
            behind_s = max(behind_s, (now - started) - sent / rate)
        for index in range(sent, due):
            key, value, headers = records[index]
            stamp = int(time.time() * 1000)
            if index >= warmup:
                sent_at[key] = stamp
            futures.append(
                await producer.send(topic, value, key=key, headers=headers, timestamp_ms=stamp)
            )
        sent = due
        await asyncio.sleep(0.005)
    last_send = time.perf_counter()
    await asyncio.gather(*futures)
    gc.enable()
    await producer.stop()
    return {
        "offered_per_s": (n - warmup - 1) / (last_send - measured_from) if n - warmup > 1 else 0.0,
        "behind_max_ms": behind_s * 1000,
        "sent_at": sent_at,
    }


async def result_times(servers: str, res_topic: str, n: int) -> dict[bytes, int]:
    """Each result's key and CreateTime (the first one per key), read once the run is over
    (read_committed, as transactions mode's readers must)."""
    consumer = AIOKafkaConsumer(
        res_topic,
        bootstrap_servers=servers,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4_000_000,
        isolation_level="read_committed",
    )
    await consumer.start()
    done: dict[bytes, int] = {}
    quiet_since = time.perf_counter()
    # Results that never came (a run cut short) end the read after 10 s of silence.
    while len(done) < n and time.perf_counter() - quiet_since < 10:
        batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
        if batches:
            quiet_since = time.perf_counter()
        for records in batches.values():
            for r in records:
                done.setdefault(r.key, r.timestamp)
    await consumer.stop()
    return done


@contextlib.contextmanager
def broker(kind: str, partitions: int) -> Iterator[str]:
    """Bootstrap servers of a fresh broker of `kind` ("embedded" or "kafka"), stopped after."""
    if kind == "kafka":
        with KafkaCluster(1, default_partitions=partitions) as cluster:
            yield cluster.bootstrap_servers
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.kafka", "--port", "0", "--partitions", str(partitions)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("KAFKA_BOOTSTRAP_SERVERS="):
                yield line.strip().split("=", 1)[1]
                return
        raise RuntimeError("embedded broker did not start")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
