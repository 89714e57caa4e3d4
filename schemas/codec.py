"""Encoding and per-topic decoding of events.

Why a codec object: msgspec Decoders are cheapest when built once per type and reused, and the
runtime needs exactly one per topic family; `EventCodec` builds them at start-up and exposes
typed `decode_*` methods, so no call site constructs a decoder on the hot path.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.events import (
    DeadLetterEvent,
    Event,
    RequestEvent,
    ResultEvent,
    StatusEvent,
)

__all__ = ["DecodeError", "EventCodec", "event_type_of"]

DecodeError = msgspec.DecodeError


def event_type_of(event: Event) -> str:
    """The `type` tag of an event (e.g. "completion.requested")."""
    tag = type(event).__struct_config__.tag
    return str(tag)


class EventCodec:
    """One reusable Encoder and one Decoder per topic family."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._requests: msgspec.json.Decoder[RequestEvent] = msgspec.json.Decoder(RequestEvent)
        self._results: msgspec.json.Decoder[ResultEvent] = msgspec.json.Decoder(ResultEvent)
        self._status: msgspec.json.Decoder[StatusEvent] = msgspec.json.Decoder(StatusEvent)
        self._dead: msgspec.json.Decoder[DeadLetterEvent] = msgspec.json.Decoder(DeadLetterEvent)

    def encode(self, event: Any) -> bytes:
        return self._encoder.encode(event)

    def decode_request(self, raw: bytes) -> RequestEvent:
        """Raises msgspec.DecodeError (incl. ValidationError) for bad JSON or shapes."""
        return self._requests.decode(raw)

    def decode_result(self, raw: bytes) -> ResultEvent:
        return self._results.decode(raw)

    def decode_status(self, raw: bytes) -> StatusEvent:
        return self._status.decode(raw)

    def decode_dead_letter(self, raw: bytes) -> DeadLetterEvent:
        return self._dead.decode(raw)
