"""Encoding and per-topic decoding of events.

Why a codec object: msgspec Decoders are cheapest when built once per type and reused, and the
runtime needs exactly one per topic family; `EventCodec` builds them at start-up and exposes
typed `decode_*` methods, so no call site constructs a decoder on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Union

import msgspec

from schemas.events import (
    CompletionFailed,
    CompletionRequested,
    CompletionSucceeded,
    DeadLetterEvent,
    Event,
    Failed,
    Request,
    Result,
    StatusEvent,
)

__all__ = ["DecodeError", "EventCodec", "event_type_of"]

DecodeError = msgspec.DecodeError


def event_type_of(event: Event) -> str:
    """The `type` tag of an event (e.g. "completion.requested")."""
    tag = type(event).__struct_config__.tag
    return str(tag)


_BUILT_IN_REQUESTS: tuple[type[Request], ...] = (CompletionRequested,)
_BUILT_IN_RESULTS: tuple[type[Result], ...] = (CompletionSucceeded, CompletionFailed)


def _union(types: Iterable[type[Any]]) -> Any:
    """The tagged union of `types` (each once, in order) for a msgspec Decoder."""
    unique = tuple(dict.fromkeys(types))
    return unique[0] if len(unique) == 1 else Union[unique]  # noqa: UP007 - built at run time


class EventCodec:
    """One reusable Encoder and one Decoder per topic family.

    `requests` / `results`: extra request and result kinds (tagged Structs) joined to the
    built-in ones, so the runtime decodes every kind its handlers declare; `failures` maps
    each extra success result to its kind's failure result.
    """

    def __init__(
        self,
        *,
        requests: Iterable[type[Request]] = (),
        results: Iterable[type[Result]] = (),
        failures: Mapping[type[Result], type[Failed]] | None = None,
    ) -> None:
        self._encoder = msgspec.json.Encoder()
        self.request_types = tuple(dict.fromkeys((*_BUILT_IN_REQUESTS, *requests)))
        self.result_types = tuple(dict.fromkeys((*_BUILT_IN_RESULTS, *results)))
        # Which failure result stands in for a success result that cannot be published.
        self._failures: dict[type[Result], type[Failed]] = {
            CompletionSucceeded: CompletionFailed,
            **(failures or {}),
        }
        self._requests: msgspec.json.Decoder[Request] = msgspec.json.Decoder(
            _union(self.request_types)
        )
        self._results: msgspec.json.Decoder[Result] = msgspec.json.Decoder(
            _union(self.result_types)
        )
        self._status: msgspec.json.Decoder[StatusEvent] = msgspec.json.Decoder(StatusEvent)
        self._dead: msgspec.json.Decoder[DeadLetterEvent] = msgspec.json.Decoder(DeadLetterEvent)

    def failure_type_of(self, result: Result) -> type[Failed]:
        """The failure result of `result`'s kind (a failure is its own)."""
        if isinstance(result, Failed):
            return type(result)
        return self._failures.get(type(result), CompletionFailed)

    def encode(self, event: Any) -> bytes:
        return self._encoder.encode(event)

    def decode_request(self, raw: bytes) -> Request:
        """Raises msgspec.DecodeError (incl. ValidationError) for bad JSON or shapes."""
        return self._requests.decode(raw)

    def decode_result(self, raw: bytes) -> Result:
        return self._results.decode(raw)

    def decode_status(self, raw: bytes) -> StatusEvent:
        return self._status.decode(raw)

    def decode_dead_letter(self, raw: bytes) -> DeadLetterEvent:
        return self._dead.decode(raw)
