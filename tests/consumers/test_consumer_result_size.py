"""Specifications of the bound on results: an answer too large to publish becomes a small
CompletionFailed that names the sizes, and the results partition keeps flowing behind it."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from consumer_handlers import Scripted
from consumer_support import TopicReader, fast_settings, produce, request, subject_for

from consumers.settings import TopicSettings
from schemas import CompletionFailed, CompletionSucceeded, ResultEvent
from services import KafkaCluster


async def _big_answer_then_flow(
    broker: Any,
    settings: Any,
    start_service: Any,
    handler: Scripted,
    size: int,
    *,
    isolation_level: str = "read_uncommitted",
) -> tuple[ResultEvent, list[ResultEvent]]:
    """A request answered with `size` bytes, then ten ordinary ones, all on one partition of
    the requests topic (and so of the results topic: same keys); their results, in order."""
    await start_service(settings, handler)
    subject = subject_for(0, settings.topics.requests.partitions)
    big = request(f"big:{size}", subject=subject)
    after = [request(f"after {i}", subject=subject) for i in range(10)]
    servers = broker.bootstrap_servers
    await produce(servers, settings.topics.requests.name, [big, *after])
    async with TopicReader(
        servers, settings.topics.results.name, isolation_level=isolation_level
    ) as results:
        await results.until(lambda rd: len(rd.records) >= 1 + len(after), timeout_s=30)
    by_id = {r.request_id: r for r in results.results()}
    assert set(by_id) == {big.event_id} | {e.event_id for e in after}
    assert len(results.records) == 1 + len(after)  # one result each, none repeated
    return by_id[big.event_id], [by_id[e.event_id] for e in after]


@pytest.mark.parametrize("delay_ms", [0, 20], ids=["batch-path", "per-event-path"])
async def test_a_result_over_max_result_bytes_is_replaced_by_a_failure_naming_the_sizes(
    kafka_broker: Any, start_service: Any, delay_ms: int
) -> None:
    """A 60 KB answer over max_result_bytes=50000 is published as a non-retriable
    CompletionFailed naming both sizes; the requests behind it succeed."""
    settings = fast_settings(kafka_broker, partitions=1, max_result_bytes=50_000)
    handler = Scripted(delay_ms=delay_ms)
    big, after = await _big_answer_then_flow(kafka_broker, settings, start_service, handler, 60_000)
    assert isinstance(big, CompletionFailed)
    assert big.error.type == "result_too_large" and not big.error.retriable
    found = re.fullmatch(r"result of (\d+) bytes exceeds max_result_bytes=50000", big.error.message)
    assert found is not None and int(found[1]) > 60_000
    assert len(msgspec.json.encode(big)) < 1_000
    assert all(isinstance(r, CompletionSucceeded) for r in after)
    assert [r.content for r in after if isinstance(r, CompletionSucceeded)] == [
        f"after {i}" for i in range(10)
    ]


async def test_a_result_under_max_result_bytes_is_published_whole(
    kafka_broker: Any, start_service: Any
) -> None:
    """An answer under the bound is not touched: a 40 KB answer with max_result_bytes=50000."""
    settings = fast_settings(kafka_broker, partitions=1, max_result_bytes=50_000)
    big, _ = await _big_answer_then_flow(kafka_broker, settings, start_service, Scripted(), 40_000)
    assert isinstance(big, CompletionSucceeded) and big.content == "x" * 40_000


@pytest.mark.real_broker
async def test_in_transactions_mode_a_result_over_max_result_bytes_is_replaced_too(
    real_kafka: KafkaCluster, start_service: Any
) -> None:
    """The transactions mode's results pass the same bound: a 60 KB answer over
    max_result_bytes=50000 is committed as the CompletionFailed naming both sizes."""
    settings = fast_settings(
        real_kafka, partitions=1, exactly_once="transactions", max_result_bytes=50_000
    )
    big, after = await _big_answer_then_flow(
        real_kafka, settings, start_service, Scripted(), 60_000
    )
    assert isinstance(big, CompletionFailed) and big.error.type == "result_too_large"
    assert re.fullmatch(r"result of \d+ bytes exceeds max_result_bytes=50000", big.error.message)
    assert all(isinstance(r, CompletionSucceeded) for r in after)


@pytest.mark.real_broker
@pytest.mark.parametrize("delay_ms", [0, 20], ids=["batch-path", "per-event-path"])
async def test_a_result_the_topic_refuses_is_replaced_by_a_failure_and_the_partition_flows(
    real_kafka: KafkaCluster, start_service: Any, delay_ms: int
) -> None:
    """A results topic limited to 64 KiB refuses a 100 KB result that max_result_bytes lets
    through; the producer is renewed, the small CompletionFailed lands, and so do the results
    behind it (the refusal must not leave the producer unable to write the partition)."""
    base = fast_settings(real_kafka, partitions=1, max_result_bytes=1_000_000)
    small = TopicSettings(name=f"{base.topics.results.name}-64k", partitions=1)
    real_kafka.create_topic(small.name, 1, config={"max.message.bytes": "65536"})
    settings = msgspec.structs.replace(
        base, topics=msgspec.structs.replace(base.topics, results=small)
    )
    big, after = await _big_answer_then_flow(
        real_kafka, settings, start_service, Scripted(delay_ms=delay_ms), 100_000
    )
    assert isinstance(big, CompletionFailed)
    assert big.error.type == "result_too_large" and not big.error.retriable
    assert re.fullmatch(
        r"result of \d+ bytes refused by the broker: MessageSizeTooLargeError", big.error.message
    )
    assert [r.content for r in after if isinstance(r, CompletionSucceeded)] == [
        f"after {i}" for i in range(10)
    ]


@pytest.mark.real_broker
async def test_in_transactions_mode_a_result_the_topic_refuses_is_replaced_and_the_partition_flows(
    real_kafka: KafkaCluster, start_service: Any
) -> None:
    """A refused result aborts its transaction, but is not retried as it is: sent alone, then
    replaced by its small CompletionFailed, it commits, and so do the results behind it."""
    base = fast_settings(
        real_kafka, partitions=1, exactly_once="transactions", max_result_bytes=1_000_000
    )
    small = TopicSettings(name=f"{base.topics.results.name}-64k", partitions=1)
    real_kafka.create_topic(small.name, 1, config={"max.message.bytes": "65536"})
    settings = msgspec.structs.replace(
        base, topics=msgspec.structs.replace(base.topics, results=small)
    )
    big, after = await _big_answer_then_flow(
        real_kafka,
        settings,
        start_service,
        Scripted(),
        100_000,
        isolation_level="read_committed",
    )
    assert isinstance(big, CompletionFailed)
    assert big.error.type == "result_too_large" and not big.error.retriable
    assert [r.content for r in after if isinstance(r, CompletionSucceeded)] == [
        f"after {i}" for i in range(10)
    ]
