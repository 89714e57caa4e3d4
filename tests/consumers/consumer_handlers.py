"""Deterministic in-process handlers for runtime tests (selected by `--handler` in subprocesses).

They answer with the request's own text so a result can be matched to its request, and can be
told to sleep, fail a number of times, fail for good, or answer with a huge content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from consumers import Completion, HandlerContext, ProviderUnavailable
from consumers.errors import HandlerError
from schemas import RequestEvent


def first_text(event: RequestEvent) -> str:
    content = event.messages[0].content
    return content if isinstance(content, str) else ""


class SlowEcho:
    """Echoes the first message after `delay_ms` milliseconds."""

    def __init__(self, delay_ms: str | float = 0, provider: str = "echo") -> None:
        self.delay_s = float(delay_ms) / 1000
        self._provider = provider
        self.calls: list[str] = []
        self.order: list[tuple[str, str]] = []
        self.concurrent = 0
        self.max_concurrent = 0

    @property
    def provider(self) -> str:
        return self._provider

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def handle(self, event: RequestEvent, ctx: HandlerContext) -> Completion:
        self.calls.append(event.event_id)
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            await self.before(event, ctx)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            self.order.append((event.subject, first_text(event)))
            return Completion(provider=self._provider, model="echo", content=first_text(event))
        finally:
            self.concurrent -= 1

    async def before(self, event: RequestEvent, ctx: HandlerContext) -> None:
        """Hook for subclasses: runs inside the counted section, before the echo."""


class Scripted(SlowEcho):
    """Behaviour per request text: "fail:N" fails N times retriably, "fatal" fails for good,
    "progress" reports progress, "gate" waits for `gate` to open, "big:N" answers N bytes."""

    def __init__(self, delay_ms: float = 0) -> None:
        super().__init__(delay_ms)
        self.failures: dict[str, int] = {}
        self.gate = asyncio.Event()
        self.on_call: Callable[[RequestEvent], None] | None = None

    async def before(self, event: RequestEvent, ctx: HandlerContext) -> None:
        text = first_text(event)
        if self.on_call is not None:
            self.on_call(event)
        if text.startswith("fail:"):
            seen = self.failures.get(event.event_id, 0)
            self.failures[event.event_id] = seen + 1
            if seen < int(text.split(":")[1]):
                raise ProviderUnavailable(f"upstream 503 #{seen + 1}")
        if text == "fatal":
            raise HandlerError("cannot caption this")
        if text == "progress":
            await ctx.report_progress("started", 0.0)
            await ctx.report_progress("halfway", 0.5, "working")
        if text == "gate":
            await self.gate.wait()

    async def handle(self, event: RequestEvent, ctx: HandlerContext) -> Completion:
        answer = await super().handle(event, ctx)
        text = first_text(event)
        if text.startswith("big:"):
            return msgspec.structs.replace(answer, content="x" * int(text.split(":")[1]))
        return answer
