"""Throughput and latency of the consumer runtime against the embedded Kafka broker.

    python bench/kafka_bench.py [--events 20000] [--slow-events 10000] [--dedupe redis|memory]

(a) raw aiokafka: produce and consume 1 KB messages (the ceiling for anything built on it);
(b) the runtime with a no-op handler: consume, decode, handle, publish result, commit;
(c) a handler that awaits 2 s (a slow provider) at a steady offered load: events/s, the
    latency the runtime adds on top of the 2 s, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumers import Completion, ConsumerService, HandlerContext, KafkaSettings
from consumers.dedupe import MemoryDedupeStore
from consumers.ratelimit import MemoryRateLimiter
from consumers.settings import ConsumerTuning, TopicSettings, TopicsSettings
from emulators.kafka import EmbeddedKafka
from schemas import ChatMessage, CompletionRequested, EventCodec, RequestEvent

CODEC = EventCodec()
PAYLOAD_TEXT = "x" * 900  # with the envelope, a request is ~1 KB


class NoOp:
    provider = "bench"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def handle(self, event: RequestEvent, ctx: HandlerContext) -> Completion:
        return Completion(provider="bench", model="noop", content="ok")


class Sleeper(NoOp):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def handle(self, event: RequestEvent, ctx: HandlerContext) -> Completion:
        await asyncio.sleep(self.seconds)
        return Completion(provider="bench", model="sleep", content="ok")


def _request(i: int) -> bytes:
    return CODEC.encode(
        CompletionRequested(
            event_id=str(uuid.uuid4()),
            subject=f"s{i}",
            task="captioning",
            messages=[ChatMessage(role="user", content=PAYLOAD_TEXT)],
        )
    )


def _settings(
    kafka: EmbeddedKafka, partitions: int, in_flight: int, fetch_wait_ms: int = 50
) -> KafkaSettings:
    tag = uuid.uuid4().hex[:6]
    topics = TopicsSettings(
        requests=TopicSettings(name=f"b-req-{tag}", partitions=partitions),
        results=TopicSettings(name=f"b-res-{tag}", partitions=partitions),
        status=TopicSettings(name=f"b-st-{tag}", partitions=1),
        dead_letters=TopicSettings(name=f"b-dlq-{tag}", partitions=1),
    )
    for topic in topics.all():
        kafka.create_topic(topic.name, topic.partitions)
    return msgspec.convert(
        msgspec.to_builtins(
            KafkaSettings(
                bootstrap_servers=kafka.bootstrap_servers,
                group_id=f"b-{tag}",
                topics=topics,
                max_in_flight_per_partition=in_flight,
                ordering_per_key=False,
                dedupe_namespace=f"bench-{tag}",
                commit_interval_s=0.5,
                consumer=ConsumerTuning(fetch_max_wait_ms=fetch_wait_ms, max_poll_records=2000),
            )
        ),
        KafkaSettings,
    )


async def _produce(servers: str, topic: str, values: list[bytes]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=5, max_batch_size=256_000)
    await producer.start()
    started = time.perf_counter()
    futures = [
        await producer.send(topic, value, key=str(i).encode()) for i, value in enumerate(values)
    ]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    return elapsed


async def _count(servers: str, topic: str, n: int, *, timestamps: bool = False) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4_000_000,
    )
    await consumer.start()
    seen: list[Any] = []
    try:
        while len(seen) < n:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batches.values():
                seen.extend((r.timestamp, r.key) if timestamps else 1 for r in records)
    finally:
        await consumer.stop()
    return seen


async def raw(kafka: EmbeddedKafka, n: int) -> float:
    topic = f"raw-{uuid.uuid4().hex[:6]}"
    kafka.create_topic(topic, 8)
    values = [b"v" * 1024] * n
    started = time.perf_counter()
    reader = asyncio.create_task(_count(kafka.bootstrap_servers, topic, n))
    await _produce(kafka.bootstrap_servers, topic, values)
    await reader
    return n / (time.perf_counter() - started)


async def runtime_noop(kafka: EmbeddedKafka, n: int, dedupe: str) -> float:
    # 8 partitions keep each under the embedded broker's ~5 MiB per-partition retention, which
    # silently drops the oldest records of a lagging partition.
    settings = _settings(kafka, partitions=8, in_flight=256)
    values = [_request(i) for i in range(n)]
    store = MemoryDedupeStore() if dedupe == "memory" else None
    limiter = MemoryRateLimiter()
    started = time.perf_counter()
    reader = asyncio.create_task(_count(kafka.bootstrap_servers, settings.topics.results.name, n))
    async with ConsumerService(settings, NoOp(), dedupe=store, limiter=limiter):
        await _produce(kafka.bootstrap_servers, settings.topics.requests.name, values)
        await reader
        elapsed = time.perf_counter() - started
    return n / elapsed


async def runtime_slow(kafka: EmbeddedKafka, n: int, rate: int, dedupe: str) -> dict[str, float]:
    # The embedded broker holds every fetch for the full fetch_max_wait_ms (a real broker
    # answers as soon as data arrives), so a short wait keeps that artefact out of latency.
    settings = _settings(kafka, partitions=12, in_flight=512, fetch_wait_ms=10)
    store = MemoryDedupeStore() if dedupe == "memory" else None
    reader = asyncio.create_task(
        _count(kafka.bootstrap_servers, settings.topics.results.name, n, timestamps=True)
    )
    sent: dict[bytes, float] = {}
    async with ConsumerService(settings, Sleeper(2.0), dedupe=store, limiter=MemoryRateLimiter()):
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=2)
        await producer.start()
        started = time.perf_counter()
        for i in range(n):
            # Offered load: `rate` events per second, sent in 10 ms slices.
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            value = _request(i)
            event_id = msgspec.json.decode(value)["event_id"].encode()
            sent[event_id] = time.time() * 1000
            await producer.send(settings.topics.requests.name, value, key=str(i).encode())
        await producer.flush()
        results = await reader
        elapsed = time.perf_counter() - started
        await producer.stop()
    added = sorted(ts - sent[key] - 2000.0 for ts, key in results)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        # The last events finish 2 s after they were sent; that tail is handler time, not
        # throughput, so it is taken off the elapsed time.
        "events_per_s": n / max(elapsed - 2.0, 1e-9),
        "p50_added_ms": added[len(added) // 2],
        "p99_added_ms": added[int(len(added) * 0.99)],
        "max_rss_mb": rss_mb,
    }


async def main(args: argparse.Namespace) -> None:
    with EmbeddedKafka(brokers=1) as kafka:
        a = await raw(kafka, args.events)
        print(f"(a) raw aiokafka produce+consume, 1 KB: {a:,.0f} msg/s")
        b = await runtime_noop(kafka, args.events, args.dedupe)
        print(f"(b) runtime, no-op handler, dedupe={args.dedupe}: {b:,.0f} events/s")
        print(f"    ratio (b)/(a) = {b / a:.2f} (target >= 0.5)")
        c = await runtime_slow(kafka, args.slow_events, args.rate, args.dedupe)
        print(
            f"(c) 2 s handler at {args.rate}/s offered: "
            f"{c['events_per_s']:,.0f} events/s sustained, "
            f"added latency p50 {c['p50_added_ms']:.0f} ms p99 {c['p99_added_ms']:.0f} ms, "
            f"peak RSS {c['max_rss_mb']:.0f} MB (targets >= 1000/s, p99 <= 100 ms, <= 1024 MB)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--slow-events", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1_500)
    parser.add_argument("--dedupe", choices=["redis", "memory"], default="redis")
    asyncio.run(main(parser.parse_args()))
