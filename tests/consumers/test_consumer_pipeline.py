"""Specifications of the consume pipeline: every record of a batch is settled, detached or
handed back, its outcome set once, and a handler never runs twice for one delivery.

The pipeline is driven as `consumers._dispatch` drives it, with the dedupe mode's durable
step built as `ConsumerService.start()` builds it (idempotent publisher on the embedded broker,
in-memory dedupe store behind the coalescing wrapper) and real
ConsumerRecords fetched from a requests topic. `Hooks` record what the runtime is told; the
records on the output topics and the dedupe store's state are checked as a caller sees them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumers import Completion, HandlerContext, HandlerRegistry, KafkaSettings
from consumers.dedupe import CoalescingDedupeStore, MemoryDedupeStore
from consumers.dedupe_mode import DedupeDurability
from consumers.errors import ClaimHeldElsewhere, OutcomeAlreadySet, ProviderBadRequest
from consumers.invoker import HandlerInvoker
from consumers.metrics import ConsumerMetrics
from consumers.pipeline import Pipeline
from consumers.publisher import EventPublisher
from consumers.records import DeadLettered, Delivery, Published, Skipped
from consumers.retry import RetryPolicy
from consumers.settings import RetrySettings, TopicSettings, TopicsSettings
from emulators.kafka import ApiKey
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
# Kafka's TOPIC_AUTHORIZATION_FAILED: a refusal for good, which no producer retry fixes.
_TOPIC_AUTHORIZATION_FAILED = 29


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
class Recorder:
    """The runtime's side of `records.Hooks`: what the pipeline reported, in order."""

    settled: list[Delivery] = field(default_factory=list)
    settled_calls: int = 0
    detached: list[tuple[Delivery, asyncio.Task[Any]]] = field(default_factory=list)
    failed: list[tuple[Delivery, Exception]] = field(default_factory=list)

    def settled_hook(self, deliveries: Sequence[Delivery]) -> None:
        self.settled.extend(deliveries)
        self.settled_calls += 1

    def settled_offsets(self) -> list[int]:
        return sorted(d.record.offset for d in self.settled)

    def work_of(self, delivery: Delivery) -> asyncio.Task[Any]:
        found = [work for d, work in self.detached if d is delivery]
        assert len(found) == 1, f"offset {delivery.record.offset} detached {len(found)} times"
        return found[0]

    def assert_each_once(self, deliveries: Sequence[Delivery]) -> None:
        """Every delivery was reported exactly once: settled, detached or handed back."""
        reported = [d.record.offset for d in self.settled]
        reported += [d.record.offset for d, _ in self.detached]
        reported += [d.record.offset for d, _ in self.failed]
        assert sorted(reported) == sorted(d.record.offset for d in deliveries)


class _Hooks:
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def settled(self, deliveries: Sequence[Delivery]) -> None:
        self._recorder.settled_hook(deliveries)

    def detach(self, delivery: Delivery, task: asyncio.Task[Any]) -> None:
        self._recorder.detached.append((delivery, task))

    def failed(self, delivery: Delivery, error: Exception) -> None:
        delivery.failures += 1
        self._recorder.failed.append((delivery, error))


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
    pipeline: Pipeline
    store: MemoryDedupeStore
    handler: Echo
    recorders: list[Recorder] = field(default_factory=list)
    _fetched: int = 0

    @property
    def bootstrap(self) -> str:
        assert self.settings.bootstrap_servers is not None
        return self.settings.bootstrap_servers

    async def fetch(self, *items: CompletionRequested | bytes, redelivered: bool = False) -> Any:
        """Produce request events (or raw values) in order; return them as deliveries."""
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
        return [Delivery(record, maybe_redelivered=redelivered) for record in fresh]

    async def run(self, deliveries: list[Delivery], recorder: Recorder | None = None) -> Recorder:
        recorder = recorder or Recorder()
        self.recorders.append(recorder)
        await asyncio.wait_for(self.pipeline.run(deliveries, _Hooks(recorder)), SETTLE_TIMEOUT_S)
        return recorder

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
    """A Pipeline over the dedupe mode, built the way ConsumerService.start() builds it."""
    assert settings.bootstrap_servers is not None
    store = MemoryDedupeStore(claim_ttl_s=settings.dedupe_claim_ttl_s)
    handler = Echo()
    publisher = EventPublisher(settings, settings.bootstrap_servers, CODEC)
    metrics = ConsumerMetrics()
    await store.start()
    await publisher.start()
    rig: Rig | None = None
    try:
        for topic in (settings.topics.results, settings.topics.dead_letters):
            await publisher.partitions_for(topic.name)
        invoker = HandlerInvoker(
            settings=settings,
            registry=HandlerRegistry({"*": handler}),
            publisher=publisher,
            metrics=metrics,
            policy=RetryPolicy(settings.retry),
        )
        durability = DedupeDurability(
            settings=settings,
            publisher=publisher,
            store=CoalescingDedupeStore(store),
            lookup=None,
            metrics=metrics,
            invoker=invoker,
        )
        pipeline = Pipeline(settings=settings, codec=CODEC, metrics=metrics, durability=durability)
        rig = Rig(settings, pipeline, store, handler)
        yield rig
    finally:
        handler.gate.set()
        for recorder in rig.recorders if rig is not None else ():
            for _, work in recorder.detached:
                work.cancel()  # a no-op once it ended; else a test that failed before it
        await publisher.stop()
        metrics.close()
        await store.stop()


async def test_a_batch_of_fast_records_is_published_once_each(rig: Rig) -> None:
    """Handlers that answer at once: every record settles with one result keyed by its id."""
    events = [request(f"caption {i}") for i in range(8)]
    deliveries = await rig.fetch(*events)

    recorder = await rig.run(deliveries)

    assert (recorder.detached, recorder.failed) == ([], [])
    recorder.assert_each_once(deliveries)
    assert all(isinstance(d.outcome, Published) for d in deliveries)
    results = await rig.results()
    assert request_ids(results) == sorted(e.event_id for e in events)
    by_id = {e.event_id: e for e in events}
    request_traces = {d.record.key.decode(): parse_headers(d.record.headers) for d in deliveries}
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


async def test_an_undecodable_record_is_dead_lettered_in_its_batch(rig: Rig) -> None:
    """A record that is not an event settles with one dead letter; its neighbours publish."""
    good = [request("first"), request("last")]
    deliveries = await rig.fetch(good[0], b"{not json", good[1])

    recorder = await rig.run(deliveries)

    recorder.assert_each_once(deliveries)
    assert recorder.settled_offsets() == [d.record.offset for d in deliveries]
    assert deliveries[1].outcome == DeadLettered("malformed")
    assert request_ids(await rig.results()) == sorted(e.event_id for e in good)
    letters = [CODEC.decode_dead_letter(r.value) for r in await rig.dead_letters()]
    assert [(letter.reason, letter.value) for letter in letters] == [("malformed", b"{not json")]


async def test_a_slow_handler_is_detached_and_does_not_hold_the_batch(rig: Rig) -> None:
    """A handler still running after its first step leaves the batch with the work to finish."""
    fast = [request("fast one"), request("fast two")]
    slow = request("slow")
    deliveries = await rig.fetch(fast[0], slow, fast[1])

    recorder = await rig.run(deliveries)

    assert not rig.handler.gate.is_set()  # run() returned while the slow handler waits
    recorder.assert_each_once(deliveries)
    assert recorder.settled_offsets() == [deliveries[0].record.offset, deliveries[2].record.offset]
    work = recorder.work_of(deliveries[1])
    assert request_ids(await rig.results()) == sorted(e.event_id for e in fast)
    assert not await rig.store.is_published(slow.event_id)

    rig.handler.gate.set()
    await asyncio.wait_for(work, SETTLE_TIMEOUT_S)

    assert recorder.settled[-1] is deliveries[1]
    results = await rig.results()
    assert request_ids(results) == sorted(e.event_id for e in [*fast, slow])
    slow_result = next(
        CODEC.decode_result(r.value) for r in results if r.key == slow.event_id.encode()
    )
    assert isinstance(slow_result, CompletionSucceeded)
    assert slow_result.content == "slow"
    assert await rig.store.is_published(slow.event_id)


async def test_a_batch_of_several_partitions_reports_each_to_its_own(rig: Rig) -> None:
    """One fetch's batch over two partitions' deliveries: each partition's hooks hear only of
    their own deliveries, a slow one's included once its detached task ends."""
    events = [request("first"), request("slow"), request("third"), request("fourth")]
    deliveries = await rig.fetch(*events)
    mine, theirs = Recorder(), Recorder()
    rig.recorders += [mine, theirs]
    entries = [(deliveries[:2], _Hooks(mine)), (deliveries[2:], _Hooks(theirs))]

    await asyncio.wait_for(rig.pipeline.run_many(entries), SETTLE_TIMEOUT_S)

    assert mine.settled == [deliveries[0]]
    assert [d for d, _ in mine.detached] == [deliveries[1]]
    assert theirs.settled_offsets() == [d.record.offset for d in deliveries[2:]]
    assert (theirs.detached, mine.failed, theirs.failed) == ([], [], [])
    rig.handler.gate.set()
    await asyncio.wait_for(mine.work_of(deliveries[1]), SETTLE_TIMEOUT_S)
    assert mine.settled == [deliveries[0], deliveries[1]]
    assert len(theirs.settled) == 2
    assert request_ids(await rig.results()) == sorted(e.event_id for e in events)


async def test_slow_handlers_ending_together_are_made_durable_together(
    rig: Rig, kafka_broker: EmbeddedKafka
) -> None:
    """Detached handlers that end at once settle in one group-commit round, not one round
    (claim, send, mark) each: far fewer settle reports and produce requests than events."""
    events = [request("slow") for _ in range(20)]
    deliveries = await rig.fetch(*events)
    recorder = await rig.run(deliveries)
    works = [recorder.work_of(d) for d in deliveries]
    assert recorder.settled == []

    with kafka_broker.track_requests() as requests:
        rig.handler.gate.set()
        await asyncio.wait_for(asyncio.gather(*works), SETTLE_TIMEOUT_S)
        produced = requests.count(ApiKey.PRODUCE)

    assert recorder.settled_offsets() == [d.record.offset for d in deliveries]
    assert all(isinstance(d.outcome, Published) for d in deliveries)
    assert recorder.settled_calls <= 2
    assert produced <= 4  # the results topic's 2 partitions, a batch each, and a spare each
    assert request_ids(await rig.results()) == sorted(e.event_id for e in events)
    for event in events:
        assert await rig.store.is_published(event.event_id)


async def test_redelivered_records_already_published_are_skipped_without_handling(
    rig: Rig,
) -> None:
    """Possibly-redelivered records whose ids are marked published are skipped, not re-run."""
    done = [request("done before"), request("also done before")]
    new = request("never seen")
    deliveries = await rig.fetch(done[0], new, done[1], redelivered=True)
    for event in done:
        assert await rig.store.claim(event.event_id)
        await rig.store.mark_published(event.event_id)

    recorder = await rig.run(deliveries)

    recorder.assert_each_once(deliveries)
    assert recorder.settled_offsets() == [d.record.offset for d in deliveries]
    assert [type(d.outcome) for d in deliveries] == [Skipped, Published, Skipped]
    assert rig.handler.calls == [new.event_id]
    assert request_ids(await rig.results()) == [new.event_id]


async def test_a_refused_claim_is_handed_back_and_published_once_without_handling_again(
    rig: Rig,
) -> None:
    """An id claimed by another holder is handed back unpublished; once the holder gives up,
    running it again publishes the result it already had, without calling its handler."""
    contested, free = request("contested"), request("free")
    deliveries = await rig.fetch(contested, free)
    assert await rig.store.claim(contested.event_id)  # another holder is publishing it

    recorder = await rig.run(deliveries)

    recorder.assert_each_once(deliveries)
    assert recorder.settled_offsets() == [deliveries[1].record.offset]
    ((handed_back, error),) = recorder.failed
    assert handed_back is deliveries[0] and isinstance(error, ClaimHeldElsewhere)
    assert request_ids(await rig.results()) == [free.event_id]

    await rig.store.release(contested.event_id)  # the other holder gave up
    again = await rig.run([handed_back])

    assert again.settled == [handed_back] and isinstance(handed_back.outcome, Published)
    assert rig.handler.calls.count(contested.event_id) == 1
    assert request_ids(await rig.results()) == sorted([contested.event_id, free.event_id])
    assert await rig.store.is_published(contested.event_id)


async def test_a_claim_published_by_its_holder_settles_as_skipped(rig: Rig) -> None:
    """Handed back for a claim held elsewhere, a record whose holder then published settles as
    Skipped: no second result."""
    contested = request("contested")
    (delivery,) = await rig.fetch(contested)
    assert await rig.store.claim(contested.event_id)

    await rig.run([delivery])
    await rig.store.mark_published(contested.event_id)  # the holder published it
    again = await rig.run([delivery])

    assert again.settled == [delivery] and delivery.outcome == Skipped()
    assert await rig.results() == []


async def test_a_refused_publish_is_retried_without_calling_the_handler_again(
    rig: Rig, kafka_broker: EmbeddedKafka
) -> None:
    """The broker refusing every try of a result hands it back with its verdict; running it
    again publishes that result: the provider is asked once per event, not once per try."""
    event = request("refused for a while")
    (delivery,) = await rig.fetch(event)
    # The batch, the record alone, and its small failure alone: three refusals.
    kafka_broker.push_request_errors(ApiKey.PRODUCE, [_TOPIC_AUTHORIZATION_FAILED] * 3)
    try:
        first = await rig.run([delivery])
    finally:
        kafka_broker.clear_request_errors(ApiKey.PRODUCE)

    ((handed_back, error),) = first.failed
    assert handed_back is delivery and not error.retriable
    assert delivery.outcome is None
    assert not await rig.store.is_published(event.event_id)  # the claim was given back

    again = await rig.run([delivery])

    assert again.settled == [delivery]
    assert rig.handler.calls == [event.event_id]
    (result,) = [CODEC.decode_result(r.value) for r in await rig.results()]
    assert isinstance(result, CompletionSucceeded) and result.request_id == event.event_id


async def test_a_non_retriable_failure_is_dead_lettered_and_published_as_a_failure(
    rig: Rig,
) -> None:
    """A handler failing for good is tried once; its dead letter and failure go out together."""
    ok, fatal = request("fine"), request("fatal")
    deliveries = await rig.fetch(ok, fatal)

    recorder = await rig.run(deliveries)

    recorder.assert_each_once(deliveries)
    assert recorder.settled_offsets() == [d.record.offset for d in deliveries]
    assert rig.handler.calls.count(fatal.event_id) == 1  # not retried
    failed = [
        CODEC.decode_result(r.value)
        for r in await rig.results()
        if r.key == fatal.event_id.encode()
    ]
    assert len(failed) == 1
    result = failed[0]
    assert isinstance(result, CompletionFailed)
    assert deliveries[1].outcome == Published(result)
    assert (result.request_id, result.attempts) == (fatal.event_id, 1)
    assert (result.error.type, result.error.retriable) == ("ProviderBadRequest", False)
    letters = [CODEC.decode_dead_letter(r.value) for r in await rig.dead_letters()]
    assert len(letters) == 1
    letter = letters[0]
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.attempts) == ("handler_failed", 1)
    record = deliveries[1].record
    assert (letter.original_topic, letter.offset) == (record.topic, record.offset)
    assert letter.value == record.value
    assert letter.error_chain[0].type == "ProviderBadRequest"
    assert await rig.store.is_published(fatal.event_id)


async def test_cancelling_a_batch_while_acks_are_pending_releases_the_claims(
    rig: Rig, kafka_broker: EmbeddedKafka
) -> None:
    """Cancelled between claiming and the broker's acks, the batch gives its claims back."""
    events = [request(f"cancel me {i}") for i in range(3)]
    deliveries = await rig.fetch(*events)
    ids = [e.event_id for e in events]
    recorder = Recorder()
    # Slow acknowledgements hold the batch between its claims and marking them published.
    kafka_broker.set_rtt(1, 500)
    try:
        task = asyncio.create_task(rig.pipeline.run(deliveries, _Hooks(recorder)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        while any(rig.store.holder_token(i) is None for i in ids):
            assert not task.done(), "run returned before its claims were observed"
            assert loop.time() < deadline, "the batch never claimed its records"
            await asyncio.sleep(0.005)
        assert not task.done()
        assert not any([await rig.store.is_published(i) for i in ids])

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        kafka_broker.set_rtt(1, 0)

    assert (recorder.settled, recorder.detached, recorder.failed) == ([], [], [])
    for event_id in ids:
        assert await rig.store.claim(event_id), f"claim of {event_id} still held"


async def test_an_outcome_is_set_once(rig: Rig) -> None:
    """Settling a delivery a second time is a bug the delivery refuses."""
    (delivery,) = await rig.fetch(request("once"))
    await rig.run([delivery])
    assert isinstance(delivery.outcome, Published)
    with pytest.raises(OutcomeAlreadySet):
        delivery.settle(Skipped())
