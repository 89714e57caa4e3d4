"""How failures are described: error chains, decode-failure reasons, dead-letter events.

Why separate: the dead-letter topic is read by people and replay tools, so what a dead letter
holds (raw bytes, headers, a reason code, the error chain) is one definition, not scattered
through the processing code.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from consumers.retry import is_retriable
from schemas import DeadLetter, ErrorInfo, RawHeader, utc_now

__all__ = ["classify_decode_error", "dead_letter_for", "error_chain"]

_MAX_CHAIN = 8
_MAX_MESSAGE = 500


def error_chain(error: BaseException) -> list[ErrorInfo]:
    """The error and its causes, outermost first, as ErrorInfo entries (bounded)."""
    chain: list[ErrorInfo] = []
    current: BaseException | None = error
    while current is not None and len(chain) < _MAX_CHAIN:
        chain.append(
            ErrorInfo(
                type=type(current).__name__,
                message=str(current)[:_MAX_MESSAGE],
                retriable=is_retriable(current),
            )
        )
        current = current.__cause__ or current.__context__
    return chain


def classify_decode_error(exc: msgspec.DecodeError) -> str:
    """Reason code of an undecodable record: malformed JSON, unknown type, or invalid shape."""
    if isinstance(exc, msgspec.ValidationError):
        return "unknown_type" if "`$.type`" in str(exc) else "invalid"
    return "malformed"


def dead_letter_for(
    record: Any, reason: str, errors: list[ErrorInfo], *, attempts: int
) -> tuple[DeadLetter, bytes]:
    """The DeadLetter for a consumed record and the key to publish it under.

    The original key keeps a subject's dead letters together; keyless records get a key from
    their position so they still spread over partitions.
    """
    letter = DeadLetter(
        event_id=f"dlq.{record.topic}.{record.partition}.{record.offset}",
        original_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=[RawHeader(key=k, value=v) for k, v in (record.headers or ())],
        reason=reason,
        error_chain=errors,
        first_seen=utc_now(),
        attempts=attempts,
    )
    key: bytes = (
        record.key
        if record.key is not None
        else base64.b64encode(f"{record.partition}:{record.offset}".encode())
    )
    return letter, key
