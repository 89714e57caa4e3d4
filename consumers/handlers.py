"""What a handler is, what it may use while it runs, and how events find their handler.

Why a protocol plus a registry: the runtime stays ignorant of providers. A handler turns one
request event into a `Completion` (or raises an error from `consumers.errors`); the runtime
owns everything around it (decoding, rate limits, retries, results, dead letters, commits).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

from consumers.errors import NoHandler
from schemas import RequestEvent, ToolCall, Usage

__all__ = [
    "Completion",
    "Handler",
    "HandlerContext",
    "HandlerRegistry",
    "ProgressReporter",
    "load_handler_factory",
]

ProgressReporter = Callable[[str, float, str], Awaitable[None]]


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    """A handler's answer; the runtime wraps it into a CompletionSucceeded result."""

    provider: str
    model: str
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    usage: Usage | None = None


class HandlerContext:
    """Per-attempt facilities handed to a handler."""

    def __init__(self, *, attempt: int, traceparent: str | None, report: ProgressReporter) -> None:
        self.attempt = attempt
        self.traceparent = traceparent
        self._report = report

    async def report_progress(self, stage: str, progress: float, message: str = "") -> None:
        """Publish a JobProgress event (0..1) to the status topic for this request."""
        await self._report(stage, min(1.0, max(0.0, progress)), message)


class Handler(Protocol):
    """Turns one request into a Completion.

    `provider` names the upstream for rate limiting: calls are budgeted per (provider, task).
    Raise `consumers.errors.HandlerError` subclasses; their `retriable` decides retries.
    """

    @property
    def provider(self) -> str: ...

    async def handle(self, event: RequestEvent, ctx: HandlerContext) -> Completion: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class HandlerRegistry:
    """Maps a task name (or "*" for any task) to its handler."""

    def __init__(self, handlers: dict[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = dict(handlers or {})

    def register(self, task: str, handler: Handler) -> None:
        self._handlers[task] = handler

    def resolve(self, event: RequestEvent) -> Handler:
        handler = self._handlers.get(event.task) or self._handlers.get("*")
        if handler is None:
            raise NoHandler(f"no handler for task {event.task!r}")
        return handler

    def unique(self) -> list[Handler]:
        """Each registered handler once (for start/stop)."""
        seen: dict[int, Handler] = {}
        for handler in self._handlers.values():
            seen.setdefault(id(handler), handler)
        return list(seen.values())


def load_handler_factory(spec: str) -> Callable[..., Handler]:
    """Resolve "package.module:Name" to a handler class or factory."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"handler spec {spec!r} must look like 'package.module:Name'")
    factory: Any = getattr(importlib.import_module(module_name), attr)
    if not callable(factory):
        raise TypeError(f"{spec} is not callable")
    return factory  # type: ignore[no-any-return]  # resolved dynamically from config
