"""A Kafka event's priority reaches the proxy's budget queue: ProxyCompletionHandler sends it as
`x-gateway-priority`, and while a provider's budget is held the queued events are served high,
then normal, then low, whatever order they arrived in.

The fast path runs in the test's event loop (as in test_proxy_budgets) with one concurrent call
allowed to Anthropic, so the test can hold that one lease itself while the events queue, and
with tracing on, so the Anthropic emulator records each call's traceparent in the order the
calls reached it: the served order, read from the provider, with no timing involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import uvicorn
from provider_setup import emulator_env
from test_proxy_budgets import CONFIG, MASTER_KEY, SETTINGS, TASK, _not_found, _Server

from budgets import Budgets, Limit, MemoryStore
from consumers.handlers import HandlerContext
from consumers.proxy_handler import ProxyCompletionHandler
from emulators.testing import EmulatorHandle
from proxy.auth import Authenticator
from proxy.budgeting import BudgetGate
from proxy.fastpath import GatewayApp
from proxy.keys import KeyResolver
from proxy.metrics import ProxyMetrics
from proxy.observe import ObservedApp
from proxy.resilience import Resilience
from proxy.routing import RoutingTable
from proxy.settings import MetricsSettings, TracingSettings
from proxy.tracing import Tracing
from schemas import ChatMessage, CompletionRequested, new_traceparent, trace_id_of

# The Anthropic deployment of TASK; its budget is the one the events queue for.
MODEL = "claude-sonnet-4-20250514"


@contextlib.asynccontextmanager
async def traced_gateway(
    emulators: dict[str, EmulatorHandle], spans: Path, limit: Limit
) -> AsyncIterator[tuple[str, Budgets]]:
    """The fast path serving TASK under `limit`, tracing on; yields its URL and budgets."""
    env = emulator_env(emulators["anthropic"], emulators["openai"], emulators["gemini"])
    budgets = Budgets([limit], MemoryStore(), poll_s=0.05)
    await budgets.start()
    metrics = ProxyMetrics(MetricsSettings(), master_key=MASTER_KEY)
    fastpath = GatewayApp(
        _not_found,
        routing=RoutingTable.from_config(CONFIG, env),
        authenticator=Authenticator(MASTER_KEY),
        resilience=Resilience(
            SETTINGS,
            KeyResolver(env),
            budgets=BudgetGate(budgets, max_queue_wait_s=60, observer=metrics),
        ),
        request_timeout_s=SETTINGS.request_timeout_s,
    )
    tracing = Tracing(TracingSettings(exporter="jsonl", path=str(spans)))
    app = ObservedApp(fastpath, metrics=metrics, tracing=tracing)
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, loop="none", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", budgets
    finally:
        server.should_exit = True
        await task
        await budgets.stop()
        tracing.shutdown()


def _event(priority: str | None) -> CompletionRequested:
    """A request of `priority`; None: one that names no priority (written before it existed)."""
    event = CompletionRequested(
        event_id=str(uuid.uuid4()),
        subject=f"sku-{priority}",
        task=TASK,
        messages=[ChatMessage(role="user", content=f"{priority} {uuid.uuid4().hex}")],
    )
    if priority is None:
        return event
    return msgspec.structs.replace(event, priority=priority)


async def _no_progress(_stage: str, _progress: float, _message: str) -> None:
    return None


async def _served_order(
    emulators: dict[str, EmulatorHandle], spans: Path, priorities: list[str | None]
) -> list[str | None]:
    """Queue one event of each priority, in this order, behind a held budget, then let them
    go; the priorities in the order their calls reached the provider."""
    async with traced_gateway(emulators, spans, Limit(provider="anthropic", concurrency=1)) as (
        url,
        budgets,
    ):
        handler = ProxyCompletionHandler(url, api_key=MASTER_KEY)
        await handler.start()
        held = await budgets.acquire("anthropic", MODEL, TASK, user="holder")
        assert held is not None
        traces: dict[str | None, str | None] = {}
        calls = []
        try:
            for priority in priorities:
                parent = new_traceparent()
                traces[trace_id_of(parent)] = priority
                ctx = HandlerContext(attempt=1, traceparent=parent, report=_no_progress)
                calls.append(asyncio.create_task(handler.handle(_event(priority), ctx)))
                # Each joins the queue before the next is sent, so the arrival order is known.
                # ASYNC110: the budget queue has no event to wait on; the test timeout bounds it.
                while budgets.queued("anthropic", MODEL, TASK) < len(calls):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            await budgets.release(held)
            answers = await asyncio.gather(*calls)
        finally:
            await handler.stop()
    assert {answer.provider for answer in answers} == {"anthropic"}
    received = emulators["anthropic"].stats()["traceparents"]
    return [traces[trace_id_of(tp)] for tp in received if trace_id_of(tp) in traces]


async def test_queued_events_are_served_by_their_priority(
    emulators: dict[str, EmulatorHandle], tmp_path: Path
) -> None:
    """Events of priority low, normal, high queued in that order while the budget is held reach
    the provider as high, normal, low."""
    served = await _served_order(emulators, tmp_path / "spans.jsonl", ["low", "normal", "high"])
    assert served == ["high", "normal", "low"]


async def test_an_event_without_a_priority_is_served_as_normal(
    emulators: dict[str, EmulatorHandle], tmp_path: Path
) -> None:
    """An event naming no priority, queued between a low and a high one, is served between
    them: after the high one, before the low one that arrived first."""
    served = await _served_order(emulators, tmp_path / "spans.jsonl", ["low", None, "high"])
    assert served == ["high", None, "low"]
