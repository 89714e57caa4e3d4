"""Event kinds: which request type a handler serves, what it returns, and its results.

Why a kind object: the runtime must decode, route and answer request types it has never heard
of (a handler's package declares them), so everything it needs to know about a kind travels
in one value: the request Struct (joined to the requests decoder), the payload a handler
returns, and the success and failure result Structs built from it. Adding a kind is declaring
one `EventKind` next to its handler and naming the handler in the config.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from schemas import (
    CompletionFailed,
    CompletionRequested,
    CompletionSucceeded,
    ErrorInfo,
    EventCodec,
    Failed,
    GatewayLatency,
    Request,
    Result,
    ToolCall,
    Usage,
)

__all__ = ["COMPLETION", "Completion", "EventKind", "KindError", "kinds_codec", "kinds_schema"]

Req = TypeVar("Req", bound=Request)
Out = TypeVar("Out", bound=msgspec.Struct)

# Fields the runtime sets on every result; a payload cannot carry them.
_RESULT_FIELDS = frozenset(Result.__struct_fields__)


class KindError(TypeError):
    """An EventKind whose types do not fit together (raised at start-up, never later)."""


@dataclass(frozen=True, slots=True)
class EventKind(Generic[Req, Out]):
    """A request type, the payload its handlers return, and its two result types.

    `succeeded` has the common result fields plus every payload field (and optionally
    `latency_ms`); `failed` is a `schemas.Failed` subclass. Both need their own `tag`.
    """

    request: type[Req]
    payload: type[Out]
    succeeded: type[Result]
    failed: type[Failed]

    def __post_init__(self) -> None:
        for struct in (self.request, self.succeeded, self.failed):
            if not isinstance(struct.__struct_config__.tag, str):
                raise KindError(f"{struct.__qualname__} needs a `tag` (its event type name)")
        clash = set(self.payload.__struct_fields__) & _RESULT_FIELDS
        if clash:
            raise KindError(f"{self.payload.__qualname__} may not define {sorted(clash)}")
        missing = set(self.payload.__struct_fields__) - set(self.succeeded.__struct_fields__)
        if missing:
            raise KindError(f"{self.succeeded.__qualname__} lacks payload fields {sorted(missing)}")
        if not issubclass(self.failed, Failed):
            raise KindError(f"{self.failed.__qualname__} must subclass schemas.Failed")

    @property
    def name(self) -> str:
        """The request's event type, e.g. "completion.requested"."""
        return str(self.request.__struct_config__.tag)

    def success(
        self, event: Request, payload: msgspec.Struct, *, attempts: int, latency_ms: float
    ) -> Result:
        """The result of `event` answered with `payload`.

        Raises KindError when the handler returned something other than this kind's payload.
        """
        if not isinstance(payload, self.payload):
            raise KindError(
                f"handler returned {type(payload).__qualname__}, "
                f"{self.name} handlers return {self.payload.__qualname__}"
            )
        fields: dict[str, Any] = {f: getattr(payload, f) for f in payload.__struct_fields__}
        if "latency_ms" in self.succeeded.__struct_fields__:
            fields["latency_ms"] = latency_ms
        return self.succeeded(
            event_id=f"{event.event_id}.result",
            request_id=event.event_id,
            subject=event.subject,
            task=event.task,
            attempts=max(1, attempts),
            **fields,
        )

    def failure(self, event: Request, error: ErrorInfo, *, attempts: int) -> Failed:
        """The final-failure result of `event`, carrying the first error of its chain."""
        return self.failed(
            event_id=f"{event.event_id}.result",
            request_id=event.event_id,
            subject=event.subject,
            task=event.task,
            error=error,
            attempts=max(1, attempts),
        )


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    """A chat-completion handler's answer; it becomes a CompletionSucceeded result."""

    provider: str
    model: str
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    usage: Usage | None = None
    # What the gateway's proxy reported for its answer (absent from other servers).
    cost_usd: float | None = None
    proxy_latency_ms: GatewayLatency | None = None
    # A fallback deployment answered, and the provider calls the proxy made (retries included).
    fallback: bool = False
    provider_attempts: int = 1


COMPLETION: EventKind[CompletionRequested, Completion] = EventKind(
    request=CompletionRequested,
    payload=Completion,
    succeeded=CompletionSucceeded,
    failed=CompletionFailed,
)


def kinds_codec(kinds: Sequence[EventKind[Any, Any]]) -> EventCodec:
    """The codec of `kinds`' events: their requests and results, and each success's failure
    type (what replaces a refused result)."""
    return EventCodec(
        requests=[k.request for k in kinds],
        results=[t for k in kinds for t in (k.succeeded, k.failed)],
        failures={k.succeeded: k.failed for k in kinds},
    )


def kinds_schema(kinds: Sequence[EventKind[Any, Any]]) -> dict[str, Any]:
    """JSON Schema of `kinds`' events: a `oneOf` per family (requests, results) over `$defs`,
    in the shape of `schemas.jsonschema`'s document, so a kind package can publish it beside
    the built-in events and tests can validate its events against it."""
    requests = [k.request for k in kinds]
    results = [t for k in kinds for t in (k.succeeded, k.failed)]
    union: list[Any] = [
        functools.reduce(operator.or_, requests),
        functools.reduce(operator.or_, results),
    ]
    found, components = msgspec.json.schema_components(union, ref_template="#/$defs/{name}")
    return {
        "properties": dict(zip(("requests", "results"), found, strict=True)),
        "$defs": dict(sorted(components.items())),
    }
