"""Specifications of dead letters: bounded whatever the record, never refused, never stalling.

The bounding is pure and tested without a broker; the size limits themselves are Kafka's, so
the tests that produce at and over `message.max.bytes` run on a real Apache Kafka node.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import ConsumerRecord
from consumer_handlers import first_text
from consumer_support import CODEC, TopicReader, fast_settings, produce, request

from consumers import Completion, HandlerContext
from consumers.deadletters import (
    MAX_DEAD_LETTER_BYTES,
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    dead_letter_for,
    minimal_dead_letter,
)
from consumers.errors import RecordTooLarge
from consumers.kafka_errors import is_refusal, translate
from consumers.refusals import fallback
from consumers.settings import TopicSettings
from schemas import CompletionSucceeded, DeadLetter, ErrorInfo, RequestEvent, build_headers
from services import KafkaCluster

CHAIN = [ErrorInfo(type="EventRejected", message="JSON is malformed")]


def _record(
    value: bytes | None,
    *,
    key: bytes | None = b"subject-1",
    headers: list[tuple[str, bytes]] | None = None,
    topic: str = "ai.requests",
) -> Any:
    return ConsumerRecord(
        topic=topic,
        partition=2,
        offset=41,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers or [("ce_id", b"e-1"), ("traceparent", b"00-ab-cd-01")],
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- bounding, no broker


def test_small_values_are_kept_whole() -> None:
    """A record well under the bound is copied whole: value, key and headers, not truncated."""
    value = b'{"type": "completion.requested", "oops": ' + b"x" * 1000
    record = _record(value)
    letter, key = dead_letter_for(record, "malformed", CHAIN, attempts=0)
    assert (letter.value, letter.key, key) == (value, b"subject-1", b"subject-1")
    assert [(h.key, h.value) for h in letter.headers] == record.headers
    assert (letter.value_size, letter.value_sha256) == (len(value), _sha256(value))
    assert (letter.key_size, letter.key_sha256) == (9, _sha256(b"subject-1"))
    assert letter.truncated is False


def test_a_value_of_exactly_the_whole_limit_is_kept_whole_and_one_byte_more_is_cut() -> None:
    """MAX_VALUE_BYTES is the largest value kept whole; a longer one keeps its first bytes."""
    at_limit, _ = dead_letter_for(_record(b"a" * MAX_VALUE_BYTES), "malformed", CHAIN, attempts=0)
    over, _ = dead_letter_for(_record(b"b" * (MAX_VALUE_BYTES + 1)), "malformed", CHAIN, attempts=0)
    assert at_limit.value == b"a" * MAX_VALUE_BYTES and not at_limit.truncated
    assert over.value == b"b" * MAX_VALUE_BYTES and over.truncated
    assert over.value_size == MAX_VALUE_BYTES + 1


def test_a_900_kb_value_becomes_a_small_excerpt_with_the_original_digest() -> None:
    """Copied whole, a 900 KB value made a dead letter over 1 MiB; bounded, it is under 128 KiB."""
    value = bytes(range(256)) * (900_000 // 256)
    record = _record(value)
    letter, _ = dead_letter_for(record, "malformed", CHAIN, attempts=0)
    encoded = CODEC.encode(letter)
    unbounded = msgspec.structs.replace(letter, value=value)
    assert len(CODEC.encode(unbounded)) > 1_048_588  # what a real broker refused
    assert len(encoded) <= 128 * 1024
    assert letter.value is not None and value.startswith(letter.value)
    assert (letter.value_size, letter.value_sha256) == (len(value), _sha256(value))
    assert letter.truncated is True
    assert CODEC.decode_dead_letter(encoded) == letter


def test_every_part_is_bounded_whatever_the_record_holds() -> None:
    """Huge key, a thousand large headers, a long error chain: still at most 128 KiB encoded."""
    control = "\x01" * 10_000  # escaped as \\u0001 in JSON: six bytes a character
    headers = [(f"h{i}{control}", b"v" * 10_000) for i in range(1000)]
    chain = [ErrorInfo(type=control, message=control) for _ in range(50)]
    record = _record(b"z" * 2_000_000, key=b"k" * 500_000, headers=headers, topic="t" * 249)
    letter, key = dead_letter_for(record, control, chain, attempts=3)
    encoded = CODEC.encode(letter)
    assert len(encoded) <= MAX_DEAD_LETTER_BYTES
    assert len(key) <= MAX_KEY_BYTES
    assert letter.truncated is True
    assert letter.key_size == 500_000 and letter.value_size == 2_000_000
    # The letter passes the schema's own validation (event_id length and the rest).
    assert CODEC.decode_dead_letter(encoded) == letter


def test_a_long_error_chain_is_cut_and_the_letter_says_so() -> None:
    """Eight entries at most, messages cut to 500 characters; a small value alone is whole."""
    chain = [ErrorInfo(type="HandlerError", message="m" * 2000) for _ in range(20)]
    letter, _ = dead_letter_for(_record(b"v"), "handler_failed", chain, attempts=4)
    assert len(letter.error_chain) == 8
    assert {len(info.message) for info in letter.error_chain} == {500}
    assert letter.value == b"v" and letter.truncated is True


def test_a_long_key_is_published_under_its_digest() -> None:
    """Records with one long key still share a dead-letter key, and so a partition."""
    long_key = b"subject-" * 1000
    first, key1 = dead_letter_for(_record(b"1", key=long_key), "malformed", CHAIN, attempts=0)
    _, key2 = dead_letter_for(_record(b"2", key=long_key), "malformed", CHAIN, attempts=0)
    assert key1 == key2 == _sha256(long_key).encode()
    assert first.key == long_key[:MAX_KEY_BYTES] and first.key_sha256 == _sha256(long_key)


def test_the_minimal_form_keeps_no_bytes_and_ends_its_chain_with_the_refusal() -> None:
    """The fallback keeps reason, sizes and digests, drops key, value and headers."""
    letter, _ = dead_letter_for(_record(b"v" * 100_000), "malformed", CHAIN, attempts=0)
    minimal = minimal_dead_letter(letter, MessageSizeTooLargeError())
    assert (minimal.key, minimal.value, minimal.headers) == (None, None, [])
    assert (minimal.reason, minimal.value_size, minimal.value_sha256) == (
        "malformed",
        100_000,
        letter.value_sha256,
    )
    assert minimal.truncated is True
    assert minimal.error_chain[0] == CHAIN[0]
    assert minimal.error_chain[-1].type == "MessageSizeTooLargeError"
    assert minimal.error_chain[-1].message.startswith("dead letter refused: ")


def _refusal() -> RecordTooLarge:
    return translate(MessageSizeTooLargeError())  # type: ignore[return-value]


def test_a_refused_letter_falls_back_to_its_minimal_form() -> None:
    """A letter the broker refuses alone is replaced by its minimal form."""
    letter, _ = dead_letter_for(_record(b"v" * 100), "malformed", CHAIN, attempts=0)
    refusal = _refusal()
    assert fallback(letter, refusal, CODEC) == minimal_dead_letter(letter, refusal)


def test_the_minimal_form_names_kafkas_refusal() -> None:
    """A translated refusal ends the chain under Kafka's own error name, which people look up."""
    letter, _ = dead_letter_for(_record(b"v"), "malformed", CHAIN, attempts=0)
    minimal = fallback(letter, _refusal(), CODEC)
    assert isinstance(minimal, DeadLetter)
    assert minimal.error_chain[-1].type == "MessageSizeTooLargeError"


@pytest.mark.parametrize("error", [KafkaConnectionError(), KafkaTimeoutError()])
def test_retriable_errors_and_timeouts_are_not_refusals(error: Exception) -> None:
    """Nothing says the letter was refused, so it is not replaced: the caller retries it."""
    assert not is_refusal(translate(error))


def test_a_refused_minimal_letter_has_no_smaller_form() -> None:
    """When even the minimal form is refused, the topic is unusable: there is no fallback."""
    letter, _ = dead_letter_for(_record(b"v"), "malformed", CHAIN, attempts=0)
    minimal = fallback(letter, _refusal(), CODEC)
    assert minimal is not None
    assert fallback(minimal, _refusal(), CODEC) is None


# ---------------------------------------------------------------- the real broker's limits


class Measure:
    """Answers with the length of the request's text, so a huge request gets a small result."""

    provider = "echo"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def handle(self, event: RequestEvent, ctx: HandlerContext) -> Completion:
        return Completion(provider="echo", model="echo", content=str(len(first_text(event))))


def _batch_bytes(key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> int:
    """Size of the one-record batch a producer sends, which the broker compares with its limit."""
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 30)
    builder.append(0, timestamp=None, key=key, value=value, headers=headers)
    return len(builder.build())


def _request_of_batch_size(target: int) -> tuple[Any, bytes, list[tuple[str, bytes]]]:
    """A request (event, value, headers) whose record batch is exactly `target` bytes."""
    subject = f"big-{uuid.uuid4().hex}"
    text_len = target
    for _ in range(4):  # the size is linear in the text but for varint widths: a few steps
        event = request("x" * text_len, subject=subject)
        headers = build_headers(
            event_id=event.event_id, event_type="completion.requested", source="urn:test"
        )
        value = CODEC.encode(event)
        size = _batch_bytes(subject.encode(), value, headers)
        if size == target:
            return event, value, headers
        text_len += target - size
    raise AssertionError(f"no request of exactly {target} batch bytes")


async def _send_one(bootstrap: str, topic: str, event: Any, value: bytes, headers: Any) -> None:
    # A client-side limit far above the broker's, so the broker is the one that judges.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1_048_576)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=event.subject.encode(), headers=headers)
    finally:
        await producer.stop()


@pytest.mark.real_broker
async def test_a_request_of_exactly_message_max_bytes_is_accepted_and_processed(
    real_kafka: KafkaCluster, start_service: Any
) -> None:
    """The broker takes a batch of exactly message.max.bytes, and the runtime handles it.

    What a user expects: a request the broker accepted is processed, not dead-lettered. The
    default max_event_bytes (1 MiB) is at least every value the default broker limit lets in.
    """
    settings = fast_settings(real_kafka, partitions=1)
    limit = real_kafka.message_max_bytes
    event, value, headers = _request_of_batch_size(limit)
    assert len(value) <= settings.max_event_bytes
    await start_service(settings, Measure())
    await _send_one(
        real_kafka.bootstrap_servers, settings.topics.requests.name, event, value, headers
    )
    async with TopicReader(real_kafka.bootstrap_servers, settings.topics.results.name) as results:
        await results.until(lambda rd: len(rd.records) >= 1, timeout_s=30)
    (result,) = results.results()
    assert isinstance(result, CompletionSucceeded) and result.request_id == event.event_id
    assert result.content == str(len(first_text(event)))


@pytest.mark.real_broker
async def test_a_request_one_byte_over_message_max_bytes_is_refused_by_the_broker(
    real_kafka: KafkaCluster,
) -> None:
    """The producer gets MessageSizeTooLargeError from the broker; nothing reaches the topic."""
    topic = f"req-{uuid.uuid4().hex[:8]}"
    real_kafka.create_topic(topic, 1)
    event, value, headers = _request_of_batch_size(real_kafka.message_max_bytes + 1)
    with pytest.raises(MessageSizeTooLargeError):
        await _send_one(real_kafka.bootstrap_servers, topic, event, value, headers)
    async with TopicReader(real_kafka.bootstrap_servers, topic) as reader:
        for _ in range(5):
            await reader.poll()
    assert reader.records == []


async def _dead_letter_then_flow(
    broker: KafkaCluster, settings: Any, start_service: Any, bad: list[bytes]
) -> list[DeadLetter]:
    """Produce the `bad` records, then ten good requests, all on one partition; the letters."""
    await start_service(settings, Measure())
    good = [request(f"after {i}") for i in range(10)]
    servers = broker.bootstrap_servers
    for value in bad:  # one produce each: their order on the partition is theirs in `bad`
        await produce(servers, settings.topics.requests.name, [], raw=[value])
    await produce(servers, settings.topics.requests.name, good)
    async with (
        TopicReader(servers, settings.topics.dead_letters.name) as dlq,
        TopicReader(servers, settings.topics.results.name) as results,
    ):
        await results.until(lambda rd: len(rd.records) >= len(good), timeout_s=30)
        await dlq.until(lambda rd: len(rd.records) >= len(bad))
    assert {r.request_id for r in results.results()} == {e.event_id for e in good}
    letters = [CODEC.decode_dead_letter(rec.value) for rec in dlq.records]
    return sorted(letters, key=lambda letter: letter.offset)


@pytest.mark.real_broker
async def test_a_900_kb_malformed_record_is_dead_lettered_and_its_partition_flows(
    real_kafka: KafkaCluster, start_service: Any
) -> None:
    """The bounded dead letter of a 900 KB record is accepted; the records behind it settle."""
    settings = fast_settings(real_kafka, partitions=1)
    bad = b"{" + b"x" * 899_999
    (letter,) = await _dead_letter_then_flow(real_kafka, settings, start_service, [bad])
    assert letter.reason == "malformed"
    assert (letter.value_size, letter.value_sha256) == (len(bad), _sha256(bad))
    assert letter.value is not None and bad.startswith(letter.value) and letter.truncated


@pytest.mark.real_broker
async def test_a_dead_letter_the_topic_refuses_is_sent_in_minimal_form(
    real_kafka: KafkaCluster, start_service: Any
) -> None:
    """A dead-letter topic limited to 16 KiB refuses a letter; its minimal form lands, and the
    letters after it too (a refusal must not leave the producer unable to write the partition).
    """
    base = fast_settings(real_kafka, partitions=1)
    small = TopicSettings(name=f"{base.topics.dead_letters.name}-16k", partitions=1)
    real_kafka.create_topic(small.name, 1, config={"max.message.bytes": str(16 * 1024)})
    topics = msgspec.structs.replace(base.topics, dead_letters=small)
    settings = msgspec.structs.replace(base, topics=topics)
    big = b"{" + b"x" * 899_999
    before, refused, after = await _dead_letter_then_flow(
        real_kafka, settings, start_service, [b"{before", big, b"{after"]
    )
    assert (before.value, after.value) == (b"{before", b"{after")
    assert (refused.value, refused.key, refused.headers) == (None, None, [])
    assert (refused.value_size, refused.value_sha256) == (len(big), _sha256(big))
    assert refused.error_chain[-1].type == "MessageSizeTooLargeError"
