"""Specifications of the group commit of the pipeline's durable step, and of the batching under
it: deliveries that become ready while rounds run share the next round, whatever their
partition; concurrent callers' dedupe calls share a store round trip; and concurrent publishes
to one partition share record batches, one `send_batch` outstanding at a time.

`GroupCommit` is driven with a commit step of the test's own (the seam it calls); the store is
the in-memory one counting the batch calls it receives; the publisher runs on the embedded
broker, whose request log counts the produce requests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import NamedTuple

import pytest

from consumers import KafkaSettings
from consumers._group_commit import GroupCommit
from consumers.dedupe import CoalescingDedupeStore, MemoryDedupeStore
from consumers.publisher import EventPublisher
from consumers.records import Delivery
from consumers.settings import TopicSettings, TopicsSettings
from emulators.kafka import ApiKey
from emulators.kafka.broker import EmbeddedKafka
from schemas import CompletionSucceeded, EventCodec

CODEC = EventCodec()
TIMEOUT_S = 10.0
# A patience no round of these tests reaches: a held round keeps its slot.
HELD_S = 3600.0


class Record(NamedTuple):
    """The fields of a consumed record the pipeline reads."""

    offset: int
    topic: str = "requests"
    partition: int = 0
    timestamp: int = 0
    key: bytes | None = None
    value: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()


def deliveries(*offsets: int) -> list[Delivery]:
    return [Delivery(Record(offset)) for offset in offsets]


class Rounds:
    """A commit step that records each round's (owner, offset) pairs and holds every round
    until `gate` is set, or until its own gate in `gates` is."""

    def __init__(self) -> None:
        self.rounds: list[list[tuple[str, int]]] = []
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.gates: list[asyncio.Event] = []
        self.cancelled = 0

    async def commit(self, entries: list[tuple[list[Delivery], str]]) -> None:
        self.rounds.append([(owner, d.record.offset) for batch, owner in entries for d in batch])
        own = asyncio.Event()
        self.gates.append(own)
        self.started.set()
        try:
            gates = [asyncio.ensure_future(self.gate.wait()), asyncio.ensure_future(own.wait())]
            try:
                await asyncio.wait(gates, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in gates:
                    waiter.cancel()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


async def test_deliveries_ready_while_a_round_runs_share_the_next_round() -> None:
    """Callers that join while the rounds in flight run wait for one, then go in one round."""
    rounds = Rounds()
    group: GroupCommit[str] = GroupCommit(rounds.commit, rounds_in_flight=1, patience_s=HELD_S)
    first = asyncio.create_task(group.join(deliveries(0), "p0"))
    await asyncio.wait_for(rounds.started.wait(), TIMEOUT_S)
    later = [asyncio.create_task(group.join(deliveries(i), "p0")) for i in range(1, 6)]
    await asyncio.sleep(0)
    assert rounds.rounds == [[("p0", 0)]]  # at most rounds_in_flight rounds at once

    rounds.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *later), TIMEOUT_S)

    assert rounds.rounds == [[("p0", 0)], [("p0", i) for i in range(1, 6)]]


async def test_a_round_takes_every_partitions_waiting_deliveries() -> None:
    """Deliveries of several partitions that wait at once share a round, each with its owner."""
    rounds = Rounds()
    group: GroupCommit[str] = GroupCommit(rounds.commit, rounds_in_flight=1, patience_s=HELD_S)
    first = asyncio.create_task(group.join(deliveries(0), "p0"))
    await asyncio.wait_for(rounds.started.wait(), TIMEOUT_S)
    others = [
        asyncio.create_task(group.join(deliveries(1), "p0")),
        asyncio.create_task(group.join(deliveries(7, 8), "p1")),
    ]
    await asyncio.sleep(0)

    rounds.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *others), TIMEOUT_S)

    assert rounds.rounds == [[("p0", 0)], [("p0", 1), ("p1", 7), ("p1", 8)]]


async def test_a_caller_cancelled_before_its_round_is_left_out_of_it() -> None:
    """Cancelled while it waits for the next round, a caller's deliveries are not committed."""
    rounds = Rounds()
    group: GroupCommit[str] = GroupCommit(rounds.commit, rounds_in_flight=1, patience_s=HELD_S)
    first = asyncio.create_task(group.join(deliveries(0), "p0"))
    await asyncio.wait_for(rounds.started.wait(), TIMEOUT_S)
    gone = asyncio.create_task(group.join(deliveries(1), "p0"))
    kept = asyncio.create_task(group.join(deliveries(2), "p0"))
    await asyncio.sleep(0)

    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    rounds.gate.set()
    await asyncio.wait_for(asyncio.gather(first, kept), TIMEOUT_S)

    assert rounds.rounds == [[("p0", 0)], [("p0", 2)]]


async def test_a_caller_cancelled_during_its_own_round_returns_once_it_is_undone() -> None:
    """Cancelling a caller mid-round cancels a round of its partition alone, and the caller
    returns after it."""
    rounds = Rounds()
    group: GroupCommit[str] = GroupCommit(rounds.commit, patience_s=HELD_S)
    caller = asyncio.create_task(group.join(deliveries(0, 1), "p0"))
    await asyncio.wait_for(rounds.started.wait(), TIMEOUT_S)

    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller

    assert rounds.cancelled == 1
    rounds.gate.set()
    await asyncio.wait_for(group.join(deliveries(2), "p0"), TIMEOUT_S)
    assert rounds.rounds == [[("p0", 0), ("p0", 1)], [("p0", 2)]]


async def test_a_caller_cancelled_during_a_shared_round_lets_it_finish_for_the_others() -> None:
    """A round holding another partition's deliveries is not cancelled with one caller: it
    finishes, and the cancelled caller returns after it."""
    rounds = Rounds()
    group: GroupCommit[str] = GroupCommit(rounds.commit, rounds_in_flight=1, patience_s=HELD_S)
    first = asyncio.create_task(group.join(deliveries(0), "p0"))
    await asyncio.wait_for(rounds.started.wait(), TIMEOUT_S)
    revoked = asyncio.create_task(group.join(deliveries(1), "p0"))
    other = asyncio.create_task(group.join(deliveries(7), "p1"))
    await asyncio.sleep(0)
    rounds.gates[0].set()
    await asyncio.wait_for(first, TIMEOUT_S)
    while len(rounds.rounds) < 2:  # noqa: ASYNC110 - the round starts within a loop step
        await asyncio.sleep(0)

    revoked.cancel()
    await asyncio.sleep(0)
    assert not revoked.done()  # waits for the shared round
    rounds.gate.set()
    await asyncio.wait_for(other, TIMEOUT_S)
    with pytest.raises(asyncio.CancelledError):
        await revoked

    assert rounds.cancelled == 0
    assert rounds.rounds == [[("p0", 0)], [("p0", 1), ("p1", 7)]]


async def until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - rounds start on the group's own timer
        await asyncio.sleep(0.001)


async def test_a_round_past_its_patience_gives_its_slot_to_the_next() -> None:
    """A round held longer than the patience (a stalled broker) no longer keeps the next
    deliveries waiting: another round starts beside it, up to `max_rounds` in all."""
    rounds = Rounds()
    group: GroupCommit[str] = GroupCommit(
        rounds.commit, rounds_in_flight=1, patience_s=0.01, max_rounds=2
    )
    first = asyncio.create_task(group.join(deliveries(0), "p0"))
    await asyncio.wait_for(rounds.started.wait(), TIMEOUT_S)
    second = asyncio.create_task(group.join(deliveries(1), "p0"))
    await asyncio.wait_for(until(lambda: len(rounds.rounds) == 2), TIMEOUT_S)
    assert not first.done()  # the first round still runs beside the second

    third = asyncio.create_task(group.join(deliveries(2), "p0"))
    await asyncio.sleep(0.05)  # both rounds overdue now
    assert len(rounds.rounds) == 2  # max_rounds
    rounds.gates[0].set()
    await asyncio.wait_for(first, TIMEOUT_S)
    await asyncio.wait_for(until(lambda: len(rounds.rounds) == 3), TIMEOUT_S)
    rounds.gate.set()
    await asyncio.wait_for(asyncio.gather(second, third), TIMEOUT_S)

    assert rounds.rounds == [[("p0", 0)], [("p0", 1)], [("p0", 2)]]


class _CountingStore(MemoryDedupeStore):
    """The in-memory store, recording the size of each batch call it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[int] = []
        self.marks: list[int] = []

    async def claim_many(self, event_ids: Sequence[str]) -> list[bool]:
        self.claims.append(len(event_ids))
        return await super().claim_many(event_ids)

    async def mark_published_many(self, event_ids: Sequence[str]) -> None:
        self.marks.append(len(event_ids))
        await super().mark_published_many(event_ids)


async def test_concurrent_batch_calls_share_one_store_round_trip() -> None:
    """Claims and marks of many callers at once (every partition's round) reach the store
    together, each caller still answered for its own ids."""
    inner = _CountingStore()
    store = CoalescingDedupeStore(inner)
    await store.start()
    assert await inner.claim_many(["taken"]) == [True]
    inner.claims.clear()
    groups = [[f"e{i}-{j}" for j in range(3)] for i in range(10)]
    groups[4][1] = "taken"

    answers = await asyncio.gather(*(store.claim_many(ids) for ids in groups))
    await asyncio.gather(*(store.mark_published_many(ids) for ids in groups))

    assert inner.claims == [30] and inner.marks == [30]
    assert answers[4] == [True, False, True]
    assert all(answer == [True] * 3 for i, answer in enumerate(answers) if i != 4)


def result(content: str) -> CompletionSucceeded:
    request_id = str(uuid.uuid4())
    return CompletionSucceeded(
        event_id=f"{request_id}.result",
        request_id=request_id,
        subject=f"s-{request_id[:8]}",
        task="captioning",
        provider="p",
        model="m",
        content=content,
        attempts=1,
    )


@pytest.fixture
async def publisher(
    kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str]
) -> AsyncIterator[EventPublisher]:
    def topic(prefix: str) -> TopicSettings:
        return TopicSettings(name=kafka_topic(1, prefix), partitions=1)

    topics = TopicsSettings(
        requests=topic("req"), results=topic("res"), status=topic("st"), dead_letters=topic("dlq")
    )
    settings = KafkaSettings(bootstrap_servers=kafka_broker.bootstrap_servers, topics=topics)
    pub = EventPublisher(settings, kafka_broker.bootstrap_servers, CODEC)
    await pub.start()
    try:
        yield pub
    finally:
        await pub.stop()


async def test_concurrent_publishes_to_one_partition_share_record_batches(
    publisher: EventPublisher, kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str]
) -> None:
    """Many callers publishing to one partition at once all land, in far fewer produce requests
    than callers: later messages join the open batch while an earlier one is under way."""
    topic = kafka_topic(1, "lane")
    await publisher.partitions_for(topic)
    events = [result(f"r{i}") for i in range(60)]
    with kafka_broker.track_requests() as requests:
        await asyncio.wait_for(
            asyncio.gather(
                *(publisher.publish(topic, e, key=e.request_id, subject=e.subject) for e in events)
            ),
            TIMEOUT_S,
        )
        produced = requests.count(ApiKey.PRODUCE)

    assert 1 <= produced <= 3
