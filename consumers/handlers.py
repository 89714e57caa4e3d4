"""What a handler is, what it may use while it runs, and how events find their handler.

Why a protocol plus a registry: the runtime stays ignorant of providers and of request kinds.
A handler serves one request kind (`consumers.kinds.EventKind`, chat completion by default):
it turns one request of that kind into the kind's payload, or raises an error from
`consumers.errors`; the runtime owns everything around it (decoding, rate limits, retries,
results, dead letters, commits). Handlers are registered per (kind, task), usually from
`gateway_settings.kafka.handlers` (`consumers.handler_config`).

A handler is an object with `provider` and `async handle(event, ctx)`, optionally `kind` and
`start()` / `stop()` (its lifespan, run once around the consumer's). A plain async function
becomes one with `@handler(kind, provider=...)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from consumers.errors import NoHandler
from consumers.kinds import COMPLETION, Completion, EventKind, kinds_codec
from schemas import EventCodec, Request

__all__ = [
    "Completion",
    "FunctionHandler",
    "Handler",
    "HandlerContext",
    "HandlerRegistry",
    "KindHandler",
    "ProgressReporter",
    "handler",
    "kind_of",
    "load_handler_factory",
]


class ProgressReporter(Protocol):
    """Publishes one JobProgress: stage, fraction, message, and the provider's details."""

    def __call__(
        self,
        stage: str,
        progress: float,
        message: str,
        /,
        *,
        queue_position: int | None = None,
        logs: Sequence[str] = (),
    ) -> Awaitable[None]: ...


ReqT_contra = TypeVar("ReqT_contra", bound=Request, contravariant=True)
OutT_co = TypeVar("OutT_co", bound=msgspec.Struct, covariant=True)
Req = TypeVar("Req", bound=Request)
Out = TypeVar("Out", bound=msgspec.Struct)


class HandlerContext:
    """Per-attempt facilities handed to a handler."""

    def __init__(self, *, attempt: int, traceparent: str | None, report: ProgressReporter) -> None:
        self.attempt = attempt
        self.traceparent = traceparent
        self._report = report

    async def report_progress(
        self,
        stage: str,
        progress: float,
        message: str = "",
        *,
        queue_position: int | None = None,
        logs: Sequence[str] = (),
    ) -> None:
        """Publish a JobProgress event (0..1) to the status topic for this request, with the
        provider's queue position and its new log lines when a long job has them."""
        progress = min(1.0, max(0.0, progress))
        if queue_position is None and not logs:
            # Reporters written before the details existed take the three arguments only.
            await self._report(stage, progress, message)
        else:
            await self._report(stage, progress, message, queue_position=queue_position, logs=logs)


class KindHandler(Protocol[ReqT_contra, OutT_co]):
    """Turns one request of its kind into that kind's payload.

    `provider` names the upstream for rate limiting: calls are budgeted per (provider, task).
    Raise `consumers.errors.HandlerError` subclasses; their `retriable` decides retries.
    Optional members, looked up by the runtime: `kind` (an EventKind; chat completion when
    absent), `start()` and `stop()`.
    """

    @property
    def provider(self) -> str: ...

    async def handle(self, event: ReqT_contra, ctx: HandlerContext) -> OutT_co: ...


# What the runtime holds: a handler of some kind (the registry pairs it with that kind).
Handler = KindHandler[Any, Any]
AnyHandler = Handler


def kind_of(handler: AnyHandler) -> EventKind[Any, Any]:
    """The request kind `handler` serves (chat completion unless it declares `kind`)."""
    kind = getattr(handler, "kind", COMPLETION)
    if not isinstance(kind, EventKind):
        raise TypeError(f"{type(handler).__qualname__}.kind must be an EventKind")
    return kind


class FunctionHandler(Generic[Req, Out]):
    """A plain async function serving one kind, as a Handler (no lifespan)."""

    def __init__(
        self,
        func: Callable[[Req, HandlerContext], Awaitable[Out]],
        *,
        kind: EventKind[Req, Out],
        provider: str,
    ) -> None:
        self._func = func
        self.kind = kind
        self._provider = provider
        self.__doc__ = func.__doc__

    @property
    def provider(self) -> str:
        return self._provider

    async def handle(self, event: Req, ctx: HandlerContext) -> Out:
        return await self._func(event, ctx)


def handler(
    kind: EventKind[Req, Out], *, provider: str
) -> Callable[[Callable[[Req, HandlerContext], Awaitable[Out]]], FunctionHandler[Req, Out]]:
    """Decorator: `@handler(KIND, provider="fal")` turns an async function into a Handler."""

    def wrap(func: Callable[[Req, HandlerContext], Awaitable[Out]]) -> FunctionHandler[Req, Out]:
        return FunctionHandler(func, kind=kind, provider=provider)

    return wrap


class HandlerRegistry:
    """Maps (request kind, task) to a handler; task "*" serves any task of its kind.

    `handlers`: task -> handler, each registered for the kind it declares.
    """

    def __init__(self, handlers: dict[str, AnyHandler] | None = None) -> None:
        self._handlers: dict[tuple[type[Request], str], AnyHandler] = {}
        self._kinds: dict[type[Request], EventKind[Any, Any]] = {COMPLETION.request: COMPLETION}
        for task, one in (handlers or {}).items():
            self.register(task, one)

    def register(self, task: str, handler: AnyHandler) -> None:
        """Serve `task` of the handler's kind with it; a second handler for the same pair
        is a configuration error."""
        kind = kind_of(handler)
        known = self._kinds.setdefault(kind.request, kind)
        if known is not kind:
            raise ValueError(f"two different kinds declare request type {kind.name!r}")
        key = (kind.request, task)
        if key in self._handlers and self._handlers[key] is not handler:
            raise ValueError(f"two handlers for task {task!r} of kind {kind.name!r}")
        self._handlers[key] = handler

    def resolve(self, event: Request) -> AnyHandler:
        """The handler of the event's kind and task; raises NoHandler when there is none."""
        kind = type(event)
        handler = self._handlers.get((kind, event.task)) or self._handlers.get((kind, "*"))
        if handler is None:
            name = self.kind_of(event).name
            raise NoHandler(f"no handler for task {event.task!r} of kind {name!r}")
        return handler

    def kind_of(self, event: Request) -> EventKind[Any, Any]:
        """The kind of a decoded request (every decodable type has one)."""
        return self._kinds[type(event)]

    def kinds(self) -> list[EventKind[Any, Any]]:
        """Every kind the registry knows: the built-in chat completion and each handler's."""
        return list(self._kinds.values())

    def codec(self) -> EventCodec:
        """The codec of every kind the registry knows (requests and results decoders)."""
        return kinds_codec(self.kinds())

    def unique(self) -> list[AnyHandler]:
        """Each registered handler once (for start/stop)."""
        seen: dict[int, AnyHandler] = {}
        for one in self._handlers.values():
            seen.setdefault(id(one), one)
        return list(seen.values())

    async def start(self) -> None:
        """Run each handler's optional `start()` once."""
        for one in self.unique():
            start = getattr(one, "start", None)
            if start is not None:
                await start()

    async def stop(self) -> None:
        """Run each handler's optional `stop()` once, the last started first."""
        for one in reversed(self.unique()):
            stop = getattr(one, "stop", None)
            if stop is not None:
                await stop()


def load_handler_factory(spec: str) -> Callable[..., Any]:
    """Resolve "package.module:name" (dots allowed after the colon) to a callable."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"handler spec {spec!r} must look like 'package.module:name'")
    found: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise TypeError(f"{spec} is not callable")
    return found  # type: ignore[no-any-return]  # resolved dynamically from config
