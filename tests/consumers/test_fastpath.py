"""Specifications of `BatchSettler`: every record of a batch is finished or detoured, once.

The settler is driven as `ConsumerService._run_batch` drives it, with a real `EventProcessor`
(idempotent publisher on the embedded broker, in-memory dedupe store behind the batching
wrapper, in-memory rate limiter) and real ConsumerRecords fetched from a requests topic.
Only what a caller can observe is checked: the `finished` / `detour` calls, the records on the
output topics, and the dedupe store's state.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumers import Completion, HandlerContext, HandlerRegistry, KafkaSettings
from consumers.batched import BatchingDedupeStore
from consumers.dedupe import MemoryDedupeStore
from consumers.errors import ProviderBadRequest
from consumers.fastpath import BatchSettler
from consumers.metrics import ConsumerMetrics
from consumers.processor import EventProcessor
from consumers.publisher import EventPublisher
from consumers.ratelimit import MemoryRateLimiter
from consumers.retry import RetryPolicy
from consumers.settings import RetrySettings, TopicSettings, TopicsSettings
from emulators.kafka.broker import EmbeddedKafka
from schemas import (
    ChatMessage,
    CompletionFailed,
    CompletionRequested,
    CompletionSucceeded,
    DeadLetter,
    EventCodec,
    RequestEvent,
    build_headers,
    parse_headers,
    trace_id_of,
)

CODEC = EventCodec()
SETTLE_TIMEOUT_S = 10.0


class Echo:
    """Answers with the request's text at once; "slow" waits for `gate`, "fatal" fails for good."""

    provider = "echo"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls: list[str] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def handle(self, event: RequestEvent, ctx: HandlerContext) -> Completion:
        self.calls.append(event.event_id)
        text = event.messages[0].content
        assert isinstance(text, str)
        if text == "slow":
            await self.gate.wait()
        if text == "fatal":
            raise ProviderBadRequest("the provider rejects this request")
        return Completion(provider=self.provider, model="echo-1", content=text)


def request(text: str) -> CompletionRequested:
    return CompletionRequested(
        event_id=str(uuid.uuid4()),
        subject=f"subject-{uuid.uuid4().hex[:8]}",
        task="captioning",
        messages=[ChatMessage(role="user", content=text)],
    )


@dataclass
class Outcome:
    """What `settle` reported, in the order it reported it."""

    finished: list[Any] = field(default_factory=list)
    detoured: list[tuple[Any, Awaitable[None] | None, int]] = field(default_factory=list)

    def finish(self, records: list[Any]) -> None:
        self.finished.extend(records)

    def detour(self, record: Any, work: Awaitable[None] | None, failures: int) -> None:
        self.detoured.append((record, work, failures))

    def finished_offsets(self) -> list[int]:
        return sorted(record.offset for record in self.finished)

    def detour_of(self, record: Any) -> tuple[Awaitable[None] | None, int]:
        found = [(work, n) for rec, work, n in self.detoured if rec.offset == record.offset]
        assert len(found) == 1, f"offset {record.offset} detoured {len(found)} times"
        return found[0]

    def assert_each_once(self, records: Sequence[Any]) -> None:
        """Every record got exactly one of `finished` / `detour`, and nothing else was reported."""
        reported = [r.offset for r in self.finished] + [r.offset for r, _, _ in self.detoured]
        assert sorted(reported) == sorted(r.offset for r in records)


async def read_topic(bootstrap: str, topic: TopicSettings) -> list[Any]:
    """Every record of `topic` up to its current end offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert loop.time() < deadline, f"could not read {topic.name} up to {ends}"
            batches = await consumer.getmany(*tps, timeout_ms=100)
            for batch in batches.values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


@dataclass
class Rig:
    settings: KafkaSettings
    settler: BatchSettler
    store: MemoryDedupeStore
    handler: Echo
    outcomes: list[Outcome] = field(default_factory=list)
    _fetched: int = 0

    @property
    def bootstrap(self) -> str:
        assert self.settings.bootstrap_servers is not None
        return self.settings.bootstrap_servers

    async def fetch(self, *items: CompletionRequested | bytes) -> list[Any]:
        """Produce request events (or raw values) in order; return them as ConsumerRecords."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            for item in items:
                if isinstance(item, bytes):
                    await producer.send_and_wait(self.settings.topics.requests.name, item)
                    continue
                headers = build_headers(
                    event_id=item.event_id, event_type="completion.requested", source="urn:test"
                )
                await producer.send_and_wait(
                    self.settings.topics.requests.name,
                    CODEC.encode(item),
                    key=item.event_id.encode(),
                    headers=headers,
                )
        finally:
            await producer.stop()
        records = await read_topic(self.bootstrap, self.settings.topics.requests)
        fresh = records[self._fetched :]
        self._fetched = len(records)
        assert len(fresh) == len(items)
        return fresh

    async def settle(self, records: list[Any], *, redelivered: bool = False) -> Outcome:
        outcome = Outcome()
        self.outcomes.append(outcome)
        await asyncio.wait_for(
            self.settler.settle(
                [(record, redelivered) for record in records],
                finished=outcome.finish,
                detour=outcome.detour,
            ),
            SETTLE_TIMEOUT_S,
        )
        return outcome

    async def results(self) -> list[Any]:
        return await read_topic(self.bootstrap, self.settings.topics.results)

    async def dead_letters(self) -> list[Any]:
        return await read_topic(self.bootstrap, self.settings.topics.dead_letters)


def request_ids(results: list[Any]) -> list[str]:
    return sorted(CODEC.decode_result(record.value).request_id for record in results)


@pytest.fixture
def settings(kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str]) -> KafkaSettings:
    def topic(prefix: str, partitions: int) -> TopicSettings:
        return TopicSettings(name=kafka_topic(partitions, prefix), partitions=partitions)

    return KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        topics=TopicsSettings(
            requests=topic("req", 1),
            results=topic("res", 2),
            status=topic("st", 1),
            dead_letters=topic("dlq", 1),
        ),
        dedupe_claim_ttl_s=3.0,
        retry=RetrySettings(initial_backoff_s=0.01, max_backoff_s=0.05, max_attempts=3),
    )


@pytest.fixture
async def rig(settings: KafkaSettings) -> AsyncIterator[Rig]:
    """A BatchSettler over an EventProcessor built the way ConsumerService.start() builds it."""
    assert settings.bootstrap_servers is not None
    store = MemoryDedupeStore(claim_ttl_s=settings.dedupe_claim_ttl_s)
    limiter = MemoryRateLimiter()
    handler = Echo()
    publisher = EventPublisher(settings, settings.bootstrap_servers, CODEC)
    metrics = ConsumerMetrics()
    await store.start()
    await limiter.start()
    await publisher.start()
    rig: Rig | None = None
    try:
        for topic in (settings.topics.results, settings.topics.dead_letters):
            await publisher.partitions_for(topic.name)
        processor = EventProcessor(
            settings=settings,
            codec=CODEC,
            registry=HandlerRegistry({"*": handler}),
            publisher=publisher,
            dedupe=BatchingDedupeStore(store),
            limiter=limiter,
            metrics=metrics,
            policy=RetryPolicy(settings.retry),
        )
        rig = Rig(settings, BatchSettler(processor), store, handler)
        yield rig
    finally:
        handler.gate.set()
        for outcome in rig.outcomes if rig is not None else ():
            for _, work, _ in outcome.detoured:
                if inspect.iscoroutine(work):
                    work.close()  # a test that failed before awaiting it
        await publisher.stop()
        metrics.close()
        await limiter.stop()
        await store.stop()


async def test_a_batch_of_fast_records_is_published_once_each(rig: Rig) -> None:
    """Handlers that answer at once: every record finishes with one result keyed by its id."""
    events = [request(f"caption {i}") for i in range(8)]
    records = await rig.fetch(*events)

    outcome = await rig.settle(records)

    assert outcome.detoured == []
    assert outcome.finished_offsets() == [r.offset for r in records]
    outcome.assert_each_once(records)
    results = await rig.results()
    assert request_ids(results) == sorted(e.event_id for e in events)
    by_id = {e.event_id: e for e in events}
    request_traces = {r.key.decode(): parse_headers(r.headers) for r in records}
    for record in results:
        result = CODEC.decode_result(record.value)
        assert isinstance(result, CompletionSucceeded)
        event = by_id[result.request_id]
        assert record.key == event.event_id.encode()
        assert result.content == event.messages[0].content
        ce = parse_headers(record.headers)
        assert ce is not None
        assert (ce.id, ce.type, ce.source, ce.subject) == (
            f"{event.event_id}.result",
            "completion.succeeded",
            rig.settings.source,
            event.subject,
        )
        parent = request_traces[event.event_id]
        assert parent is not None
        assert trace_id_of(ce.traceparent) == trace_id_of(parent.traceparent)
    for event in events:
        assert await rig.store.is_published(event.event_id)


async def test_an_undecodable_record_is_detoured_without_work(rig: Rig) -> None:
    """A record that is not an event goes to the per-event path; its neighbours finish."""
    good = [request("first"), request("last")]
    records = await rig.fetch(good[0], b"{not json", good[1])

    outcome = await rig.settle(records)

    outcome.assert_each_once(records)
    assert outcome.detour_of(records[1]) == (None, 0)
    assert outcome.finished_offsets() == [records[0].offset, records[2].offset]
    assert request_ids(await rig.results()) == sorted(e.event_id for e in good)
    # Dead-lettering it is the per-event path's job: doing it here too would send it twice.
    assert await rig.dead_letters() == []


async def test_a_slow_handler_is_detoured_and_does_not_hold_the_batch(rig: Rig) -> None:
    """A handler still running after its first step leaves the batch with the work to finish."""
    fast = [request("fast one"), request("fast two")]
    slow = request("slow")
    records = await rig.fetch(fast[0], slow, fast[1])

    outcome = await rig.settle(records)

    assert not rig.handler.gate.is_set()  # settle returned while the slow handler waits
    outcome.assert_each_once(records)
    assert outcome.finished_offsets() == [records[0].offset, records[2].offset]
    work, failures = outcome.detour_of(records[1])
    assert work is not None
    assert failures == 0
    assert request_ids(await rig.results()) == sorted(e.event_id for e in fast)
    assert not await rig.store.is_published(slow.event_id)

    rig.handler.gate.set()
    await asyncio.wait_for(work, SETTLE_TIMEOUT_S)

    results = await rig.results()
    assert request_ids(results) == sorted(e.event_id for e in [*fast, slow])
    slow_result = next(
        CODEC.decode_result(r.value) for r in results if r.key == slow.event_id.encode()
    )
    assert isinstance(slow_result, CompletionSucceeded)
    assert slow_result.content == "slow"
    assert await rig.store.is_published(slow.event_id)


async def test_redelivered_records_already_published_are_finished_without_publishing(
    rig: Rig,
) -> None:
    """Possibly-redelivered records whose ids are marked published are skipped, not re-run."""
    done = [request("done before"), request("also done before")]
    new = request("never seen")
    records = await rig.fetch(done[0], new, done[1])
    for event in done:
        assert await rig.store.claim(event.event_id)
        await rig.store.mark_published(event.event_id)

    outcome = await rig.settle(records, redelivered=True)

    assert outcome.detoured == []
    assert outcome.finished_offsets() == [r.offset for r in records]
    outcome.assert_each_once(records)
    assert rig.handler.calls == [new.event_id]
    assert request_ids(await rig.results()) == [new.event_id]


async def test_a_refused_claim_is_detoured_and_not_published_by_the_batch(rig: Rig) -> None:
    """An id claimed by another holder is left to the per-event path, which publishes it once."""
    contested, free = request("contested"), request("free")
    records = await rig.fetch(contested, free)
    assert await rig.store.claim(contested.event_id)  # another holder is publishing it

    outcome = await rig.settle(records)

    outcome.assert_each_once(records)
    assert outcome.finished_offsets() == [records[1].offset]
    work, failures = outcome.detour_of(records[0])
    assert work is not None
    assert failures == 0
    assert request_ids(await rig.results()) == [free.event_id]

    await rig.store.release(contested.event_id)  # the other holder gave up
    await asyncio.wait_for(work, SETTLE_TIMEOUT_S)

    assert request_ids(await rig.results()) == sorted([contested.event_id, free.event_id])
    assert await rig.store.is_published(contested.event_id)


async def test_a_non_retriable_failure_is_detoured_to_dead_letter_and_fail(rig: Rig) -> None:
    """A handler failing for good is detoured; its work dead-letters it and publishes a failure."""
    ok, fatal = request("fine"), request("fatal")
    records = await rig.fetch(ok, fatal)

    outcome = await rig.settle(records)

    outcome.assert_each_once(records)
    assert outcome.finished_offsets() == [records[0].offset]
    work, failures = outcome.detour_of(records[1])
    assert work is not None
    assert failures == 0
    assert request_ids(await rig.results()) == [ok.event_id]
    assert await rig.dead_letters() == []

    await asyncio.wait_for(work, SETTLE_TIMEOUT_S)

    assert rig.handler.calls.count(fatal.event_id) == 1  # not retried
    failed = [
        CODEC.decode_result(r.value)
        for r in await rig.results()
        if r.key == fatal.event_id.encode()
    ]
    assert len(failed) == 1
    result = failed[0]
    assert isinstance(result, CompletionFailed)
    assert (result.request_id, result.attempts) == (fatal.event_id, 1)
    assert (result.error.type, result.error.retriable) == ("ProviderBadRequest", False)
    letters = [CODEC.decode_dead_letter(r.value) for r in await rig.dead_letters()]
    assert len(letters) == 1
    letter = letters[0]
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.attempts) == ("handler_failed", 1)
    assert (letter.original_topic, letter.offset) == (records[1].topic, records[1].offset)
    assert letter.value == records[1].value
    assert letter.error_chain[0].type == "ProviderBadRequest"
    assert await rig.store.is_published(fatal.event_id)


async def test_cancelling_settle_while_acks_are_pending_releases_the_claims(
    rig: Rig, kafka_broker: EmbeddedKafka
) -> None:
    """Cancelled between claiming and the broker's acks, the batch gives its claims back."""
    events = [request(f"cancel me {i}") for i in range(3)]
    records = await rig.fetch(*events)
    ids = [e.event_id for e in events]
    outcome = Outcome()
    # Slow acknowledgements hold the batch between its claims and marking them published.
    kafka_broker.set_rtt(1, 500)
    try:
        task = asyncio.create_task(
            rig.settler.settle(
                [(record, False) for record in records],
                finished=outcome.finish,
                detour=outcome.detour,
            )
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        while any(rig.store.holder_token(i) is None for i in ids):
            assert not task.done(), "settle returned before its claims were observed"
            assert loop.time() < deadline, "the batch never claimed its records"
            await asyncio.sleep(0.005)
        assert not task.done()
        assert not any([await rig.store.is_published(i) for i in ids])

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        kafka_broker.set_rtt(1, 0)

    assert outcome.finished == []
    assert outcome.detoured == []
    for event_id in ids:
        assert await rig.store.claim(event_id), f"claim of {event_id} still held"
