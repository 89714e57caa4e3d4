"""How failures are described: error chains, decode-failure reasons, dead-letter events.

Why separate: the dead-letter topic is read by people and replay tools, so what a dead letter
holds (raw bytes, headers, a reason code, the error chain) is one definition, not scattered
through the processing code.

Why bounded: a dead letter must never be refused by the broker, or the record it describes
could not be settled and its partition would stall. Copied whole, a 900 KB record became a
1.2 MB dead letter (bytes are base64 in JSON), over Kafka's default `message.max.bytes`. So a
dead letter keeps the value whole up to `MAX_VALUE_BYTES` and otherwise its first bytes, always
with the original's size and SHA-256; key, headers and error chain are cut to small bounds too,
and the encoded letter never exceeds `MAX_DEAD_LETTER_BYTES`. Should the broker still refuse one
(a dead-letter topic configured below that), the publisher sends its minimal form
(`minimal_dead_letter`): no bytes of the record, only reason, sizes, digests and the error
chain with the refusal added.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

import msgspec

from consumers.retry import is_retriable
from schemas import DeadLetter, ErrorInfo, RawHeader, utc_now

__all__ = [
    "MAX_DEAD_LETTER_BYTES",
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "classify_decode_error",
    "dead_letter_for",
    "error_chain",
    "minimal_dead_letter",
]

# The encoded DeadLetter never exceeds this; its Kafka record adds only the key (at most
# MAX_KEY_BYTES) and the CloudEvents headers. An eighth of the broker's default 1 MiB leaves
# room for brokers and topics configured well below the default.
MAX_DEAD_LETTER_BYTES = 128 * 1024
# Values up to this size are kept whole (a replay tool can resend them); longer ones are cut
# to their first bytes, as many as fit, at most this many.
MAX_VALUE_BYTES = 64 * 1024
# Longer keys are cut in the letter and replaced by their digest as the record's key.
MAX_KEY_BYTES = 1024
_MAX_HEADERS = 32
_MAX_HEADER_KEY_CHARS = 128
_MAX_HEADER_VALUE_BYTES = 1024
# Encoded bytes (JSON of the key, base64 of the value) of all kept headers together.
_MAX_HEADERS_BYTES = 12 * 1024
_MAX_CHAIN = 8
_MAX_MESSAGE = 500
_MAX_TYPE = 200
_MAX_REASON = 100
_MAX_EVENT_ID = 200  # Event.event_id's own bound

_json = msgspec.json.Encoder()


def error_chain(error: BaseException) -> list[ErrorInfo]:
    """The error and its causes, outermost first, as ErrorInfo entries (bounded)."""
    chain: list[ErrorInfo] = []
    current: BaseException | None = error
    while current is not None and len(chain) < _MAX_CHAIN:
        chain.append(_info(current))
        current = current.__cause__ or current.__context__
    return chain


def _info(error: BaseException, prefix: str = "") -> ErrorInfo:
    # A translated broker error is named by Kafka's own error, which is what people look up.
    name = getattr(error, "upstream", None) or type(error).__name__
    return ErrorInfo(
        type=str(name)[:_MAX_TYPE],
        message=(prefix + str(error))[:_MAX_MESSAGE],
        retriable=is_retriable(error),
    )


def classify_decode_error(exc: msgspec.DecodeError) -> str:
    """Reason code of an undecodable record: malformed JSON, unknown type, or invalid shape."""
    if isinstance(exc, msgspec.ValidationError):
        return "unknown_type" if "`$.type`" in str(exc) else "invalid"
    return "malformed"


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _bounded_chain(errors: Iterable[ErrorInfo], limit: int = _MAX_CHAIN) -> list[ErrorInfo]:
    # Callers build chains themselves too, so the bounds are applied again here.
    return [
        ErrorInfo(
            type=info.type[:_MAX_TYPE],
            message=info.message[:_MAX_MESSAGE],
            retriable=info.retriable,
        )
        for info in list(errors)[:limit]
    ]


def _bounded_headers(headers: Any) -> tuple[list[RawHeader], bool]:
    """The leading headers that fit the bounds, each cut to its own bounds, and whether
    anything was cut or left out."""
    kept: list[RawHeader] = []
    spent = 0
    cut = False
    for key, value in headers or ():
        short_key = str(key)[:_MAX_HEADER_KEY_CHARS]
        short_value = None if value is None else bytes(value[:_MAX_HEADER_VALUE_BYTES])
        cost = len(_json.encode(short_key)) + (0 if short_value is None else _b64_len(short_value))
        if len(kept) == _MAX_HEADERS or spent + cost > _MAX_HEADERS_BYTES:
            return kept, True
        shortened = short_key != key or (value is not None and len(value) > len(short_value or b""))
        cut = cut or shortened
        spent += cost
        kept.append(RawHeader(key=short_key, value=short_value))
    return kept, cut


def _b64_len(data: bytes) -> int:
    return 4 * ((len(data) + 2) // 3)


def _event_id(record: Any) -> str:
    event_id = f"dlq.{record.topic}.{record.partition}.{record.offset}"
    if len(event_id) <= _MAX_EVENT_ID:
        return event_id
    # Topic names may be longer than an event id may be; a digest keeps the id unique.
    digest = hashlib.sha256(str(record.topic).encode()).hexdigest()[:32]
    return f"dlq.{digest}.{record.partition}.{record.offset}"


def dead_letter_for(
    record: Any, reason: str, errors: list[ErrorInfo], *, attempts: int
) -> tuple[DeadLetter, bytes]:
    """The bounded DeadLetter for a consumed record and the key to publish it under.

    The original key keeps a subject's dead letters together; a key over MAX_KEY_BYTES is
    replaced by its SHA-256 (still the same partition for the same key), and keyless records
    get a key from their position so they still spread over partitions.
    """
    key: bytes | None = None if record.key is None else bytes(record.key)
    value: bytes | None = None if record.value is None else bytes(record.value)
    headers, headers_cut = _bounded_headers(record.headers)
    chain = _bounded_chain(errors)
    shell = DeadLetter(
        event_id=_event_id(record),
        original_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=None if key is None else key[:MAX_KEY_BYTES],
        value=None,
        headers=headers,
        reason=reason[:_MAX_REASON],
        error_chain=chain,
        first_seen=utc_now(),
        attempts=attempts,
        key_size=None if key is None else len(key),
        key_sha256=_sha256(key),
        value_size=None if value is None else len(value),
        value_sha256=_sha256(value),
    )
    excerpt: bytes | None = None
    if value is not None:
        # The rest of the letter is bounded (a few KiB at most); the value takes what is left,
        # so the bound holds exactly, whatever the other parts hold. Base64 costs 4 per 3.
        room = max(0, MAX_DEAD_LETTER_BYTES - len(_json.encode(shell))) // 4 * 3
        excerpt = value[: min(MAX_VALUE_BYTES, room)]
    truncated = (
        headers_cut
        or (key is not None and len(key) > MAX_KEY_BYTES)
        or (value is not None and len(excerpt or b"") < len(value))
        or chain != list(errors)
        or len(reason) > _MAX_REASON
    )
    letter = msgspec.structs.replace(shell, value=excerpt, truncated=truncated)
    publish_key: bytes
    if key is None:
        publish_key = base64.b64encode(f"{record.partition}:{record.offset}".encode())
    elif len(key) > MAX_KEY_BYTES:
        publish_key = hashlib.sha256(key).hexdigest().encode()
    else:
        publish_key = key
    return letter, publish_key


def minimal_dead_letter(letter: DeadLetter, refusal: BaseException) -> DeadLetter:
    """`letter` without any bytes of the record, and with the refusal ending its error chain.

    What stays identifies the record (topic, partition, offset, sizes, digests) and says why it
    failed, so the record can be found in the source topic while its retention lasts.
    """
    chain = _bounded_chain(letter.error_chain, _MAX_CHAIN - 1)
    chain.append(_info(refusal, prefix="dead letter refused: "))
    return msgspec.structs.replace(
        letter, key=None, value=None, headers=[], error_chain=chain, truncated=True
    )
