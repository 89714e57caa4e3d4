"""What flows through the consume pipeline: consumed records, deliveries, verdicts, outcomes.

Why typed: the pipeline hands one record's state between five steps (decode, screen, handle,
decide, make durable) and two exactly-once modes; a `Delivery` carries it, and its `Outcome` is
set exactly once (`OutcomeAlreadySet` otherwise), as a FastStream message is acked or rejected
once. A `ConsumedRecord` is what the pipeline reads of an aiokafka ConsumerRecord.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from consumers.errors import OutcomeAlreadySet
from consumers.kinds import EventKind
from schemas import Event, Request, Result

__all__ = [
    "Abandoned",
    "ConsumedRecord",
    "DeadLettered",
    "Delivery",
    "Hooks",
    "Message",
    "Outcome",
    "Published",
    "Skipped",
    "Verdict",
]


class ConsumedRecord(Protocol):
    """The fields of a consumed Kafka record the pipeline reads (aiokafka's ConsumerRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Message(NamedTuple):
    """One event to produce, with its record key and its CloudEvents subject and trace."""

    topic: str
    event: Event
    key: bytes
    subject: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What settling a record must make durable, decided once from its handling (or its
    rejection): the result (None for a record that is no event) and the messages to produce,
    the dead letter before the result."""

    result: Result | None
    succeeded: bool
    messages: tuple[Message, ...]
    reason: str | None = None  # the dead letter's reason, when there is one


@dataclass(frozen=True, slots=True)
class Published:
    """The record's result (and a failure's dead letter) is durable."""

    result: Result


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """The record is no request event: only its dead letter is durable (if enabled)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A redelivery: an earlier delivery of the record already made its result durable."""


@dataclass(frozen=True, slots=True)
class Abandoned:
    """The partition went to another owner (or lost its producer): its next owner redoes it."""


Outcome = Published | DeadLettered | Skipped | Abandoned


@dataclass(eq=False, slots=True)
class Delivery:
    """One record's way through the pipeline; `failures` counts durable steps that failed."""

    record: ConsumedRecord
    maybe_redelivered: bool = False
    traceparent: str = ""
    event: Request | None = None
    # The event's kind, known once a handler is started for it (it shapes the result).
    kind: EventKind[Any, Any] | None = None
    verdict: Verdict | None = None
    # Messages of the verdict not acknowledged yet (a failed step retries only these).
    unsent: list[Message] = field(default_factory=list)
    # The verdict's messages were sent at least once: a failed send may still have landed.
    attempted: bool = False
    failures: int = 0
    # Its handler outlived the batch's step: its own task finishes it (`Hooks.detach`).
    detached: bool = False
    _outcome: Outcome | None = None

    @property
    def outcome(self) -> Outcome | None:
        return self._outcome

    def decide(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.unsent = list(verdict.messages)

    def settle(self, outcome: Outcome) -> None:
        """Set the record's outcome; a second call is a bug and raises OutcomeAlreadySet."""
        if self._outcome is not None:
            raise OutcomeAlreadySet(
                f"offset {self.record.offset} settled as {self._outcome!r}, then as {outcome!r}"
            )
        self._outcome = outcome

    def settle_decided(self) -> None:
        """Settle with what the verdict made durable: its result, or its dead letter."""
        verdict = self.verdict
        assert verdict is not None  # only decided deliveries are made durable
        if verdict.result is not None:
            self.settle(Published(verdict.result))
        else:
            self.settle(DeadLettered(verdict.reason or ""))


class Hooks(Protocol):
    """What the runtime gives the pipeline for one partition's deliveries."""

    def settled(self, deliveries: Sequence[Delivery]) -> None:
        """Their outcomes are set: their offsets may be committed, their slots are free."""
        ...

    def detach(self, delivery: Delivery, task: asyncio.Task[Any]) -> None:
        """`task`, the delivery's handler task, finishes it on its own (decides and makes it
        durable): track it until it ends (a handler still running)."""
        ...

    def failed(self, delivery: Delivery, error: Exception) -> None:
        """A step failed (`error` is the infrastructure's): run the delivery again after a
        backoff, keeping its verdict, so its handler is never called again for it."""
        ...
