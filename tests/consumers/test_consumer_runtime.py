"""Specifications of the consumer runtime against the embedded broker, in one process."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from consumer_handlers import Scripted, SlowEcho
from consumer_support import CODEC, TopicReader, fast_settings, produce, request
from structlog.testing import capture_logs

from consumers import ConsumerService
from consumers.settings import ConsumerTuning
from core.logging import merge_log_scope
from schemas import (
    CompletionFailed,
    CompletionSucceeded,
    build_headers,
    new_traceparent,
    parse_headers,
    trace_id_of,
)


async def test_every_request_gets_one_result_keyed_by_request_id(
    kafka_broker: Any, start_service: Any
) -> None:
    """Each request yields exactly one success result whose key is the request id."""
    settings = fast_settings(kafka_broker)
    await start_service(settings, SlowEcho(1))
    events = [request(f"caption {i}") for i in range(40)]
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, events)
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: len(rd.records) >= 40)
        await asyncio.sleep(0.3)  # a duplicate would arrive right behind; give it the chance
        await r.poll()
        results = r.results()
    assert sorted(res.request_id for res in results) == sorted(e.event_id for e in events)
    assert all(isinstance(res, CompletionSucceeded) for res in results)
    assert {rec.key.decode() for rec in r.records} == {e.event_id for e in events}
    by_id = {e.event_id: e for e in events}
    assert all(res.content == by_id[res.request_id].messages[0].content for res in results)


async def test_results_carry_cloudevents_headers_and_the_request_trace(
    kafka_broker: Any, start_service: Any
) -> None:
    """A result's headers are CloudEvents attributes continuing the request's trace id."""
    settings = fast_settings(kafka_broker)
    await start_service(settings, SlowEcho())
    event = request("trace me")
    parent = new_traceparent()
    headers = build_headers(
        event_id=event.event_id,
        event_type="completion.requested",
        source="urn:test",
        traceparent=parent,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await producer.start()
    await producer.send_and_wait(
        settings.topics.requests.name, CODEC.encode(event), key=b"k", headers=headers
    )
    await producer.stop()
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: len(rd.records) >= 1)
    ce = parse_headers(r.records[0].headers)
    assert ce is not None
    assert (ce.type, ce.id) == ("completion.succeeded", f"{event.event_id}.result")
    assert trace_id_of(ce.traceparent) == trace_id_of(parent)


async def test_malformed_records_are_dead_lettered_while_good_ones_flow(
    event_broker: Any, start_service: Any
) -> None:
    """Bad JSON, a wrong field type, an unknown type and an oversized record go to the DLQ."""
    kafka_broker = event_broker
    settings = fast_settings(kafka_broker, max_event_bytes=4096)
    await start_service(settings, SlowEcho())
    good = [request(f"ok {i}") for i in range(10)]
    wire = msgspec.json.decode(CODEC.encode(request("x")))
    wrong_type = msgspec.json.encode({**wire, "subject": 42})
    unknown = msgspec.json.encode({**wire, "type": "hologram.requested"})
    oversized = CODEC.encode(request("y" * 5000))
    raw = [b"{not json", wrong_type, unknown, oversized]
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, good, raw=raw)
    servers = kafka_broker.bootstrap_servers
    async with (
        TopicReader(servers, settings.topics.dead_letters.name) as dlq,
        TopicReader(servers, settings.topics.results.name) as results,
    ):
        await dlq.until(lambda rd: len(rd.records) >= 4)
        await results.until(lambda rd: len(rd.records) >= 10)
    letters = [CODEC.decode_dead_letter(rec.value) for rec in dlq.records]
    assert sorted(letter.reason for letter in letters) == [
        "invalid",
        "malformed",
        "oversized",
        "unknown_type",
    ]
    assert sorted(letter.value for letter in letters) == sorted(raw)
    assert all(letter.original_topic == settings.topics.requests.name for letter in letters)
    assert all(letter.error_chain for letter in letters)


async def test_retriable_failures_are_retried_until_success(
    kafka_broker: Any, start_service: Any
) -> None:
    """A handler failing twice with a retriable error succeeds on attempt 3."""
    settings = fast_settings(kafka_broker)
    handler = Scripted()
    await start_service(settings, handler)
    event = request("fail:2")
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, [event])
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: len(rd.records) >= 1)
    (result,) = r.results()
    assert isinstance(result, CompletionSucceeded)
    assert result.attempts == 3


async def test_final_failures_publish_a_failed_result_and_a_dead_letter(
    kafka_broker: Any, start_service: Any
) -> None:
    """A non-retriable failure is tried once, reported as CompletionFailed and dead-lettered."""
    settings = fast_settings(kafka_broker)
    await start_service(settings, Scripted())
    event = request("fatal")
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, [event])
    servers = kafka_broker.bootstrap_servers
    async with (
        TopicReader(servers, settings.topics.results.name) as results,
        TopicReader(servers, settings.topics.dead_letters.name) as dlq,
    ):
        await results.until(lambda rd: len(rd.records) >= 1)
        await dlq.until(lambda rd: len(rd.records) >= 1)
    (result,) = results.results()
    assert isinstance(result, CompletionFailed)
    assert (result.error.type, result.error.retriable, result.attempts) == (
        "HandlerError",
        False,
        1,
    )
    letter = CODEC.decode_dead_letter(dlq.records[0].value)
    assert letter.reason == "handler_failed"
    assert letter.error_chain[0].message == "cannot caption this"


async def test_retriable_failures_give_up_after_the_attempt_budget(
    kafka_broker: Any, start_service: Any
) -> None:
    """A handler that keeps failing retriably ends as CompletionFailed after max_attempts."""
    settings = fast_settings(kafka_broker)
    await start_service(settings, Scripted())
    await produce(
        kafka_broker.bootstrap_servers, settings.topics.requests.name, [request("fail:99")]
    )
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: len(rd.records) >= 1)
    (result,) = r.results()
    assert isinstance(result, CompletionFailed)
    assert (result.attempts, result.error.retriable) == (3, True)


async def test_same_subject_is_processed_in_order_across_concurrency(
    kafka_broker: Any, start_service: Any
) -> None:
    """Events sharing a subject run one after another in produce order; subjects interleave."""
    settings = fast_settings(kafka_broker, partitions=1)
    handler = SlowEcho(2)
    await start_service(settings, handler)
    events = [request(f"{s}-{i}", subject=s) for i in range(15) for s in ("a", "b", "c")]
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, events)
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: len(rd.records) >= len(events))
    for subject in ("a", "b", "c"):
        seen = [text for subj, text in handler.order if subj == subject]
        assert seen == [f"{subject}-{i}" for i in range(15)]
    assert handler.max_concurrent > 1


async def test_backpressure_pauses_at_the_in_flight_bound_and_resumes(
    kafka_broker: Any, start_service: Any
) -> None:
    """With a bound of 3 a stuck handler holds exactly 3 events and the partition pauses."""
    settings = fast_settings(
        kafka_broker, partitions=1, max_in_flight_per_partition=3, ordering_per_key=False
    )
    handler = Scripted()
    service = await start_service(settings, handler)
    events = [request("gate") for _ in range(12)]
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, events)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    # The partition pauses as its third event is taken, before that event's handler has
    # started (the screen comes first): wait for both.
    while service.metrics.paused._value.get() < 1 or handler.concurrent < 3:
        assert loop.time() < deadline, (
            f"paused partitions {service.metrics.paused._value.get()}, "
            f"handlers running {handler.concurrent}"
        )
        await asyncio.sleep(0.02)
    assert service.in_flight == 3
    assert handler.concurrent == 3
    handler.gate.set()
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: len(rd.records) >= 12)
    assert handler.max_concurrent == 3
    assert service.metrics.paused._value.get() == 0


async def test_commits_cover_exactly_the_finished_prefix(
    kafka_broker: Any, start_service: Any
) -> None:
    """With offset 0 stuck, later finished offsets are not committed; after it, all are."""
    settings = fast_settings(kafka_broker, partitions=1, ordering_per_key=False)
    handler = Scripted()
    await start_service(settings, handler)
    events = [request("gate")] + [request(f"ok {i}") for i in range(5)]
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, events)
    tp = TopicPartition(settings.topics.requests.name, 0)
    probe = AIOKafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=settings.group_id,
        enable_auto_commit=False,
    )
    await probe.start()
    try:
        async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
            await r.until(lambda rd: len(rd.records) >= 5)
        await asyncio.sleep(settings.commit_interval_s * 3)
        assert await probe.committed(tp) in (None, 0)
        handler.gate.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await probe.committed(tp) != 6:
            assert loop.time() < deadline, "commit never reached the end"
            await asyncio.sleep(0.05)
    finally:
        await probe.stop()


async def test_a_repeated_event_publishes_one_result(kafka_broker: Any, start_service: Any) -> None:
    """The same event delivered twice (a redelivery) yields one result only."""
    settings = fast_settings(kafka_broker, partitions=1)
    handler = SlowEcho()
    await start_service(settings, handler)
    event = request("twice")
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, [event])
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: len(rd.records) >= 1)
        await produce(
            kafka_broker.bootstrap_servers,
            settings.topics.requests.name,
            [event, request("marker")],
        )
        await r.until(lambda rd: len(rd.records) >= 2)
        await asyncio.sleep(0.2)
        await r.poll()
    ids = [res.request_id for res in r.results()]
    assert len(ids) == 2
    assert ids.count(event.event_id) == 1


async def test_progress_reports_reach_the_status_topic(
    kafka_broker: Any, start_service: Any
) -> None:
    """Progress a handler reports is published as JobProgress for that request."""
    settings = fast_settings(kafka_broker)
    await start_service(settings, Scripted())
    event = request("progress")
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, [event])
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.status.name) as r:
        await r.until(lambda rd: len(rd.records) >= 2)
    statuses = [CODEC.decode_status(rec.value) for rec in r.records]
    assert [(s.request_id, s.stage, s.progress) for s in statuses] == [
        (event.event_id, "started", 0.0),
        (event.event_id, "halfway", 0.5),
    ]


async def test_metrics_are_served_over_http(kafka_broker: Any, start_service: Any) -> None:
    """The metrics port exposes consumed/completed counters after processing."""
    settings = fast_settings(kafka_broker, metrics_port=0)
    service = await start_service(settings, SlowEcho())
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, [request("m")] * 1)
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: len(rd.records) >= 1)
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{service.metrics_port}/metrics")).text
    assert 'consumer_events_completed_total{task="captioning"} 1.0' in text
    assert "consumer_handler_latency_seconds_bucket" in text


async def test_a_result_published_before_a_crash_without_marker_is_not_repeated(
    kafka_broker: Any, start_service: Any
) -> None:
    """A result already on the results topic but unknown to the dedupe store (the consumer died
    between the broker's ack and the marker) is found, and no second result is published."""
    settings = fast_settings(kafka_broker, partitions=1)
    event = request("crashed before the marker")
    earlier = CompletionSucceeded(
        event_id=f"{event.event_id}.result",
        request_id=event.event_id,
        subject=event.subject,
        task=event.task,
        provider="echo",
        model="echo",
        content="from the dead consumer",
    )
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, [event])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await producer.start()
    await producer.send_and_wait(
        settings.topics.results.name, CODEC.encode(earlier), key=event.event_id.encode()
    )
    await producer.stop()
    handler = SlowEcho()
    await start_service(settings, handler)
    marker = request("after")
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, [marker])
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: any(x.request_id == marker.event_id for x in rd.results()))
    assert [x.request_id for x in r.results()] == [event.event_id, marker.event_id]
    assert handler.calls == [marker.event_id]


async def test_a_rebalance_to_a_second_member_loses_and_repeats_nothing(
    kafka_broker: Any, start_service: Any
) -> None:
    """When a second consumer joins mid-stream, revoked in-flight work is settled or redone once."""
    # The stream must outlast the second member's join (session timeout minus ~1 s on the
    # embedded broker): 200 events, 2 at a time per partition, 150 ms each take ~4 s alone.
    settings = fast_settings(
        kafka_broker,
        max_in_flight_per_partition=2,
        consumer=ConsumerTuning(
            fetch_max_wait_ms=50, session_timeout_ms=3000, heartbeat_interval_ms=300
        ),
    )
    first, second = SlowEcho(150), SlowEcho(150)
    await start_service(settings, first)
    events = [request(f"item {i}") for i in range(200)]
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, events)
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: len(rd.records) >= 20)
        await start_service(settings, second)
        await r.until(lambda rd: len({x.request_id for x in rd.results()}) >= 200, timeout_s=40)
        await asyncio.sleep(0.3)
        await r.poll()
    ids = [x.request_id for x in r.results()]
    assert sorted(ids) == sorted(e.event_id for e in events)
    assert second.calls, "the second member never received partitions"


async def test_logs_carry_topic_partition_and_event_id(
    kafka_broker: Any, start_service: Any
) -> None:
    """Log lines about an event are bound to its topic, partition, offset, event id and task."""
    settings = fast_settings(kafka_broker, partitions=1)
    await start_service(settings, Scripted())
    event = request("fatal")
    with capture_logs(processors=[merge_log_scope]) as logs:
        await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, [event])
        async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
            await r.until(lambda rd: len(rd.records) >= 1)
    failed = [line for line in logs if line["event"] == "consumer.handler_failed"]
    assert failed
    assert {k: failed[0][k] for k in ("topic", "partition", "offset", "event_id", "task")} == {
        "topic": settings.topics.requests.name,
        "partition": 0,
        "offset": 0,
        "event_id": event.event_id,
        "task": "captioning",
    }


async def _committed(kafka_broker: Any, group: str, topic: str) -> int | None:
    probe = AIOKafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await probe.start()
    try:
        committed: int | None = await probe.committed(TopicPartition(topic, 0))
        return committed
    finally:
        await probe.stop()


async def test_stop_drains_in_flight_work_and_commits_it(kafka_broker: Any) -> None:
    """stop() lets running events finish, publishes their results and commits past them."""
    settings = fast_settings(kafka_broker, partitions=1, ordering_per_key=False)
    handler = SlowEcho(300)
    service = ConsumerService(settings, handler)
    await service.start()
    try:
        await produce(
            kafka_broker.bootstrap_servers,
            settings.topics.requests.name,
            [request(f"d{i}") for i in range(8)],
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(handler.calls) < 8:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
    finally:
        await service.stop()
    assert len(handler.order) == 8
    committed = await _committed(kafka_broker, settings.group_id, settings.topics.requests.name)
    assert committed == 8


async def test_stop_abandons_work_past_the_drain_deadline_uncommitted(kafka_broker: Any) -> None:
    """Work still running at the drain deadline is cancelled and its offset is not committed."""
    settings = fast_settings(kafka_broker, partitions=1, drain_timeout_s=0.2)
    handler = Scripted()
    service = ConsumerService(settings, handler)
    await service.start()
    try:
        await produce(
            kafka_broker.bootstrap_servers, settings.topics.requests.name, [request("gate")]
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while handler.concurrent < 1:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
    finally:
        started = loop.time()
        await service.stop()
    assert loop.time() - started < 5
    assert await _committed(kafka_broker, settings.group_id, settings.topics.requests.name) in (
        None,
        0,
    )
