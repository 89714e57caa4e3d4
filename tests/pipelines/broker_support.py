"""What the pipelines' broker tests share: fresh topics and settings for one test, the consumer
service running a registry built from those settings, requests sent to and records read off
the topics, and each result checked against the published schema, then decoded.

Sending and reading go through the consumer tests' own send_requests and TopicReader, and the
job kinds' settings through their fast_settings (tests/consumers/consumer_support.py), rather
than copies of them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import msgspec
from jobs_support import consumer_settings, validate
from structured_support import master_key, sibling

from consumers import ConsumerService
from consumers.handler_config import build_registry
from consumers.settings import (
    HandlerSpec,
    KafkaSettings,
    TopicSettings,
    TopicsSettings,
    load_kafka_settings,
)
from schemas import EventCodec, JobProgress, Request

__all__ = [
    "broker_settings",
    "checked",
    "consumer_helpers",
    "job_consumer",
    "job_outcome",
    "progress",
    "read",
    "results_by_id",
    "running_consumer",
    "send",
]

T = TypeVar("T")


def broker_settings(
    broker: Any, proxy_url: str, redis_url: str, handlers: list[HandlerSpec]
) -> KafkaSettings:
    """The default settings on `broker` with one-partition topics no other test uses (created
    here), dedupe in `redis_url`, `handlers`, and the proxy client pointed at `proxy_url`."""
    tag = uuid.uuid4().hex[:8]
    topics = TopicsSettings(
        requests=TopicSettings(name=f"req-{tag}", partitions=1),
        results=TopicSettings(name=f"res-{tag}", partitions=1),
        status=TopicSettings(name=f"st-{tag}", partitions=1),
        dead_letters=TopicSettings(name=f"dlq-{tag}", partitions=1),
    )
    for topic in topics.all():
        broker.create_topic(topic.name, topic.partitions)
    base = load_kafka_settings(None)
    return msgspec.structs.replace(
        base,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"g-{tag}",
        topics=topics,
        dedupe_redis_url=redis_url,
        dedupe_namespace=f"test-dedupe-{tag}",
        commit_interval_s=0.2,
        drain_timeout_s=5.0,
        handlers=handlers,
        proxy=msgspec.structs.replace(base.proxy, url=proxy_url, timeout_s=20.0),
    )


@contextlib.asynccontextmanager
async def running_consumer(settings: KafkaSettings, proxy_api_key: str) -> AsyncIterator[None]:
    """The consumer service over the registry `settings` configure, stopped afterwards."""
    service = ConsumerService(settings, build_registry(settings, proxy_api_key=proxy_api_key))
    await service.start()
    try:
        yield
    finally:
        await service.stop()


@contextlib.contextmanager
def consumer_helpers(redis_url: str) -> Iterator[ModuleType]:
    """The consumer tests' helpers, their fast_settings pointed at `redis_url`."""
    support = sibling("consumers", "consumer_support")
    # The consumers' own session fixture may have set it already: put back what was there.
    before = list(support.REDIS_URL)
    support.REDIS_URL[:] = [redis_url]
    try:
        yield support
    finally:
        support.REDIS_URL[:] = before


@contextlib.asynccontextmanager
async def job_consumer(
    broker: Any, proxy: tuple[Any, Path], redis_url: str, root: Path, *, factory: str, task: str
) -> AsyncIterator[KafkaSettings]:
    """A consumer running the one handler `factory` for `task` on the consumer tests' fast
    settings, through `proxy` (the running proxy and its config), reading inputs from `root`
    and polling its jobs often; its settings."""
    running_proxy, config = proxy
    options = {"config": str(config), "allowed_roots": [str(root)], "poll_interval_s": 0.05}
    spec = HandlerSpec(factory=factory, tasks=[task], options=options)
    with consumer_helpers(redis_url) as support:
        settings = consumer_settings(running_proxy, broker, support, [spec])
        async with running_consumer(settings, master_key()):
            yield settings


async def send(servers: str, topic: str, codec: EventCodec, events: Iterable[Request]) -> None:
    """Each event as a request record: keyed by subject, with its CloudEvents headers."""
    await sibling("consumers", "consumer_support").send_requests(servers, topic, codec, events)


async def read(servers: str, topic: str, count: int, timeout_s: float = 110.0) -> list[Any]:
    """At least `count` records of `topic`, from its beginning."""
    reader_type = sibling("consumers", "consumer_support").TopicReader
    async with reader_type(servers, topic) as reader:
        await reader.until(lambda rd: len(rd.records) >= count, timeout_s=timeout_s)
        records: list[Any] = reader.records
        return records


async def progress(servers: str, topic: str, count: int) -> list[JobProgress]:
    """At least `count` status events of `topic`, decoded."""
    return [
        msgspec.json.decode(r.value, type=JobProgress) for r in await read(servers, topic, count)
    ]


def checked(raw: bytes, schemas: dict[str, Any], decode: Callable[[bytes], T]) -> T:
    """`raw` validated as JSON against the results of the published `schemas`, then decoded."""
    validate(schemas, "results", raw)
    return decode(raw)


async def results_by_id(
    settings: KafkaSettings,
    count: int,
    *,
    schemas: dict[str, Any],
    decode: Callable[[bytes], Any],
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """The first `count` results by request id, each `checked`; each record under
    `max_bytes` when given."""
    found = {}
    servers = settings.bootstrap_servers or ""
    for record in await read(servers, settings.topics.results.name, count):
        if max_bytes is not None:
            assert len(record.value) < max_bytes
        result = checked(record.value, schemas, decode)
        found[result.request_id] = result
    return found


async def job_outcome(
    settings: KafkaSettings, codec: EventCodec, event: Request
) -> tuple[bytes, list[JobProgress]]:
    """`event` sent; its raw result and the progress published for it before the result."""
    servers = settings.bootstrap_servers or ""
    await send(servers, settings.topics.requests.name, codec, [event])
    support = sibling("consumers", "consumer_support")
    async with support.TopicReader(servers, settings.topics.results.name) as reader:
        await reader.until(lambda rd: len(rd.records) >= 1, timeout_s=60)
        raw: bytes = reader.records[0].value
    async with support.TopicReader(servers, settings.topics.status.name) as reader:
        # Published before the result: read until two polls in a row bring nothing new.
        await reader.until(lambda rd: len(rd.records) >= 1)
        seen = -1
        while seen != len(reader.records):
            seen = len(reader.records)
            await reader.poll()
            await reader.poll()
        events = [msgspec.json.decode(r.value, type=JobProgress) for r in reader.records]
    return raw, sorted(events, key=lambda p: p.occurred_at)
