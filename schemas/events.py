"""The event types that travel over Kafka, one tagged union per topic family.

Why tagged unions: a topic carries several event types over time; the `type` tag names each one
so a single msgspec Decoder per topic validates and dispatches in one pass, and a new event type
joins a family by adding a Struct to its union (see `RequestEvent`). Events are frozen and
TOLERATE unknown fields: producers may roll out a newer schema before consumers do. A breaking
change bumps `schema_version`.

Families and their topics (names and partition counts come from `gateway_settings.kafka`):
- requests:     work to do, keyed by `subject` so one product's / job's events stay ordered;
- results:      one result per request (success OR final failure), keyed by the request id so
                a redelivered request can be recognised downstream;
- status:       progress of long jobs, keyed by `subject`;
- dead letters: events the runtime could not decode or handle, with their raw bytes (bounded).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from schemas.messages import ChatMessage, ToolCall, Usage

__all__ = [
    "SCHEMA_VERSION",
    "CompletionFailed",
    "CompletionRequested",
    "CompletionSucceeded",
    "DeadLetter",
    "DeadLetterEvent",
    "ErrorInfo",
    "Event",
    "Failed",
    "GatewayLatency",
    "JobProgress",
    "RawHeader",
    "Request",
    "RequestEvent",
    "Result",
    "ResultEvent",
    "StatusEvent",
    "utc_now",
]

SCHEMA_VERSION = 1


def utc_now() -> datetime:
    return datetime.now(UTC)


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every event carries. `event_id` is unique per event (a UUID in practice)."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    occurred_at: datetime = msgspec.field(default_factory=utc_now)
    schema_version: int = SCHEMA_VERSION


# ---------------------------------------------------------------- requests


class Request(Event, frozen=True, kw_only=True):
    """Fields every request kind carries: its ordering key, its task and its deadline.

    A request kind is a subclass with its own `tag`; it travels on the requests topic and gets
    exactly one result there (a subclass of `Result`). The runtime decodes the kinds its
    handlers declare (`consumers.kinds.EventKind`), so a new kind needs no runtime change.
    """

    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    task: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    # When the producer stops caring for the answer; the consumer and the proxy give up then
    # (no retry, no fallback starts after it). None: the consumer's configured budget applies.
    deadline: datetime | None = None
    # Its place in the proxy's provider-budget queue while a provider is saturated (served
    # high, then normal, then low). Events written before this field existed decode as normal;
    # any other value is a decode error, so the event is dead-lettered naming `priority`.
    priority: Literal["high", "normal", "low"] = "normal"


class CompletionRequested(Request, frozen=True, kw_only=True, tag="completion.requested"):
    """Ask for a chat completion of `task` (the proxy's model name, e.g. "captioning")."""

    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    response_format: dict[str, Any] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(gt=0)] | None = None
    tools: list[dict[str, Any]] | None = None


# The request kinds the gateway ships; kinds declared elsewhere (a handler's package) join the
# requests decoder at start-up through their `EventKind`, without editing this union.
RequestEvent = CompletionRequested


# ---------------------------------------------------------------- results


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One error of a chain: its type name, a message without secrets, and retriability."""

    type: str
    message: str
    retriable: bool = False


class Result(Event, frozen=True, kw_only=True):
    """Fields every result carries: which request it answers, and after how many attempts.

    Results are keyed by `request_id` on the results topic; `event_id` is the request's id
    plus ".result", so a result published twice is recognisable as the same one.
    """

    request_id: str
    subject: str
    task: str
    attempts: Annotated[int, msgspec.Meta(ge=1)] = 1


class GatewayLatency(msgspec.Struct, frozen=True, kw_only=True):
    """The proxy's account of one answer's time, in milliseconds: from the request's arrival
    (`total`), inside provider calls (`upstream`), waiting for a provider budget (`queue`), and
    the gateway's own share (`overhead` = total - upstream - queue)."""

    total: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    upstream: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    queue: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    overhead: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class Failed(Result, frozen=True, kw_only=True):
    """Base of the final-failure result of a kind: the first error of its chain."""

    error: ErrorInfo


class CompletionSucceeded(Result, frozen=True, kw_only=True, tag="completion.succeeded"):
    """The completion a request asked for."""

    provider: str
    model: str
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    usage: Usage | None = None
    # The consumer's whole handling of the request, retries included.
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    # What the answer cost in USD, as the proxy priced it; None when it could not say.
    cost_usd: Annotated[float, msgspec.Meta(ge=0)] | None = None
    # The proxy's split of its own answer's time; None from a server that does not report it.
    proxy_latency_ms: GatewayLatency | None = None
    # A fallback deployment answered (the primary failed or could not take the request).
    fallback: bool = False
    # Provider calls the proxy made for this answer, its retries and fallbacks included.
    provider_attempts: Annotated[int, msgspec.Meta(ge=1)] = 1


class CompletionFailed(Failed, frozen=True, kw_only=True, tag="completion.failed"):
    """A request that failed for good; still a result, so its producer learns of the failure."""


ResultEvent = CompletionSucceeded | CompletionFailed


# ---------------------------------------------------------------- status


class JobProgress(Event, frozen=True, kw_only=True, tag="job.progress"):
    """Progress of a long job (e.g. a video summary), 0..1, with a human-readable stage."""

    request_id: str
    subject: str
    task: str
    stage: str
    progress: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    message: str = ""
    # The provider's queue position (0: next to start) while the job waits; None otherwise.
    queue_position: Annotated[int, msgspec.Meta(ge=0)] | None = None
    # Provider log lines new since the previous progress event of the request.
    logs: list[str] = msgspec.field(default_factory=list)


StatusEvent = JobProgress


# ---------------------------------------------------------------- dead letters


class RawHeader(msgspec.Struct, frozen=True, kw_only=True):
    """A Kafka header exactly as received; `value` is base64 in JSON."""

    key: str
    value: bytes | None = None


class DeadLetter(Event, frozen=True, kw_only=True, tag="dead_letter"):
    """An event the runtime gave up on, with what is needed to inspect or replay it.

    A dead letter must always fit on the dead-letter topic, so `key`, `value` and `headers` are
    bounded copies (`consumers.deadletters` sets the limits): `value` is whole when
    `len(value) == value_size`, otherwise an excerpt (its first bytes), and `value_sha256`
    identifies the original either way. `truncated` is true when anything was cut or left out;
    such a letter cannot be replayed from its own bytes. Letters written before these fields
    existed decode with them unset (sizes and digests None, `truncated` false).
    """

    original_topic: str
    partition: Annotated[int, msgspec.Meta(ge=0)]
    offset: Annotated[int, msgspec.Meta(ge=0)]
    key: bytes | None = None
    value: bytes | None = None
    headers: list[RawHeader] = msgspec.field(default_factory=list)
    reason: str
    error_chain: list[ErrorInfo] = msgspec.field(default_factory=list)
    first_seen: datetime
    attempts: Annotated[int, msgspec.Meta(ge=0)] = 0
    # Sizes and SHA-256 (lowercase hex) of the ORIGINAL key and value; None when it had none.
    key_size: Annotated[int, msgspec.Meta(ge=0)] | None = None
    key_sha256: str | None = None
    value_size: Annotated[int, msgspec.Meta(ge=0)] | None = None
    value_sha256: str | None = None
    truncated: bool = False


DeadLetterEvent = DeadLetter
