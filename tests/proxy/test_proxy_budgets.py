"""Provider budgets in the proxy: a caller over budget is queued then served, moved to the
fallback when the wait would pass its deadline, answered 429 with a computed Retry-After when
every provider is saturated; an upstream 429 tightens the budget.

The fast path (under the proxy's outermost layer, which adds the latency headers) runs in the
test's event loop in front of the session's emulators, with the budgets in this process, so
each test holds the Budgets object and the metrics it checks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from typing import Any

import httpx
import pytest
import uvicorn
from provider_setup import emulator_env
from structlog.testing import capture_logs

from budgets import Budgets, Limit, MemoryStore
from emulators.testing import EmulatorHandle
from proxy.auth import Authenticator
from proxy.budgeting import BudgetGate
from proxy.fastpath import GatewayApp
from proxy.keys import KeyResolver
from proxy.metrics import ProxyMetrics
from proxy.observe import ObservedApp
from proxy.resilience import Resilience
from proxy.routing import RoutingTable
from proxy.settings import MetricsSettings, ResilienceSettings, TracingSettings
from proxy.tracing import Tracing

MASTER_KEY = "sk-gw-budget-test-key-91c2"
TASK = "budgeted"
ANTHROPIC = "anthropic/claude-sonnet-4-20250514"
GEMINI = "gemini/gemini-2.5-flash"
SETTINGS = ResilienceSettings(
    attempts=3, backoff_base_s=0.01, backoff_max_s=0.05, request_timeout_s=10, max_retry_after_s=3
)
CONFIG = {
    "model_list": [
        {
            "model_name": TASK,
            "litellm_params": {
                "model": ANTHROPIC,
                "api_key": "os.environ/ANTHROPIC_API_KEY",
                "api_base": "os.environ/ANTHROPIC_API_BASE",
            },
        },
        {
            "model_name": f"{TASK}-fallback",
            "litellm_params": {
                "model": GEMINI,
                "api_key": "os.environ/GEMINI_API_KEY",
                "api_base": "os.environ/GEMINI_API_BASE",
            },
        },
    ],
    "router_settings": {"fallbacks": [{TASK: [f"{TASK}-fallback"]}]},
}


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # pytest owns the process's signals.
        yield


async def _not_found(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@contextlib.asynccontextmanager
async def budget_gateway(
    emulators: dict[str, EmulatorHandle], *limits: Limit
) -> AsyncIterator[tuple[httpx.AsyncClient, Budgets, ProxyMetrics]]:
    """The fast path serving TASK (Anthropic, then Gemini) under `limits`; yields a client
    for it, its budgets and its metrics."""
    env = emulator_env(emulators["anthropic"], emulators["openai"], emulators["gemini"])
    routing = RoutingTable.from_config(CONFIG, env)
    budgets = Budgets(limits, MemoryStore(), poll_s=0.05)
    await budgets.start()
    metrics = ProxyMetrics(MetricsSettings(), master_key=MASTER_KEY)
    gate = BudgetGate(budgets, max_queue_wait_s=30, observer=metrics)
    fastpath = GatewayApp(
        _not_found,
        routing=routing,
        authenticator=Authenticator(MASTER_KEY),
        resilience=Resilience(SETTINGS, KeyResolver(env), budgets=gate),
        request_timeout_s=SETTINGS.request_timeout_s,
    )
    app = ObservedApp(fastpath, metrics=metrics, tracing=Tracing(TracingSettings()))
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, loop="none", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
        ) as client:
            yield client, budgets, metrics
    finally:
        server.should_exit = True
        await task
        await budgets.stop()


async def _ask(client: httpx.AsyncClient, text: str, **headers: str) -> httpx.Response:
    body = {"model": TASK, "messages": [{"role": "user", "content": text}], "max_tokens": 20}
    return await client.post("/v1/chat/completions", json=body, headers=headers)


def _calls(handle: EmulatorHandle) -> int:
    return int(handle.stats()["requests"])


async def test_a_caller_over_budget_is_queued_then_served(
    emulators: dict[str, EmulatorHandle],
) -> None:
    """Three requests at once against one call per 3 s: all served by the primary, the later
    ones after waiting in its queue (x-gateway-queue-ms)."""
    limit = Limit(provider="anthropic", rpm=20, burst=1)
    async with budget_gateway(emulators, limit) as (client, _, metrics):
        answers = await asyncio.gather(*(_ask(client, f"queued {i}") for i in range(3)))
        waits = metrics.registry.get_sample_value(
            "gateway_budget_queue_wait_seconds_count", {"provider": "anthropic"}
        )
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {a.headers["x-gateway-provider"] for a in answers} == {"anthropic"}
    waited = [float(a.headers["x-gateway-queue-ms"]) for a in answers]
    assert sum(1 for ms in waited if ms > 0) >= 1, waited
    assert waits == 3
    assert _calls(emulators["anthropic"]) == 3
    assert _calls(emulators["gemini"]) == 0


async def test_the_fallback_serves_when_the_wait_would_pass_the_deadline(
    emulators: dict[str, EmulatorHandle],
) -> None:
    """With the primary's next call 10 s away and 3 s left, the fallback serves at once."""
    limit = Limit(provider="anthropic", rpm=6, burst=1)
    async with budget_gateway(emulators, limit) as (client, _, _):
        first = await _ask(client, "first")
        second = await _ask(client, "second", **{"x-gateway-timeout-ms": "3000"})
    assert first.headers["x-gateway-provider"] == "anthropic"
    assert second.status_code == 200
    assert second.headers["x-gateway-provider"] == "gemini"
    assert second.headers["x-gateway-fallback"] == "true"
    assert _calls(emulators["anthropic"]) == 1


async def test_every_provider_saturated_is_a_429_with_the_queues_retry_after(
    emulators: dict[str, EmulatorHandle],
) -> None:
    """Once both providers' single calls per 10 s are spent, the next caller gets a 429
    rate_limit_exceeded whose Retry-After is the shorter expected wait, and no provider call."""
    limits = (
        Limit(provider="anthropic", rpm=6, burst=1),
        Limit(provider="gemini", rpm=6, burst=1),
    )
    deadline = {"x-gateway-timeout-ms": "3000"}
    async with budget_gateway(emulators, *limits) as (client, _, _):
        served = [await _ask(client, f"spend {i}", **deadline) for i in range(2)]
        refused = await _ask(client, "one too many", **deadline)
    assert [a.headers["x-gateway-provider"] for a in served] == ["anthropic", "gemini"]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["x-gateway-retriable"] == "true"
    assert 2 <= int(refused.headers["retry-after"]) <= 10
    assert _calls(emulators["anthropic"]) + _calls(emulators["gemini"]) == 2


async def test_an_upstream_429_tightens_the_budget(
    emulators: dict[str, EmulatorHandle],
) -> None:
    """A 429 from the primary halves its budget's rate; the retry still serves the request."""
    limit = Limit(provider="anthropic", rpm=600, burst=10)
    emulators["anthropic"].set_fault("429:retry-after=0", count=1)
    async with budget_gateway(emulators, limit) as (client, budgets, _):
        answer = await _ask(client, "pushed back once")
        rate = await budgets.current_rate("anthropic", ANTHROPIC, TASK)
    assert answer.status_code == 200
    assert answer.headers["x-gateway-provider"] == "anthropic"
    assert rate is not None and rate < 10 * 0.6


@pytest.mark.parametrize("value", ["urgent", "HIGHEST"])
async def test_an_unknown_priority_is_a_400_naming_the_header(
    emulators: dict[str, EmulatorHandle], value: str
) -> None:
    """x-gateway-priority takes high, normal or low; anything else is refused before a call."""
    limit = Limit(provider="anthropic", rpm=600)
    async with budget_gateway(emulators, limit) as (client, _, _):
        answer = await _ask(client, "who first", **{"x-gateway-priority": value})
    assert answer.status_code == 400
    assert "x-gateway-priority" in answer.json()["error"]["message"]
    assert _calls(emulators["anthropic"]) == 0


async def test_a_failing_budget_store_lets_calls_through_and_says_so(
    emulators: dict[str, EmulatorHandle],
) -> None:
    """A store that cannot answer (never started, like Redis gone) does not fail the request:
    the call is made unbudgeted and a warning names the provider."""
    env = emulator_env(emulators["anthropic"], emulators["openai"], emulators["gemini"])
    route = RoutingTable.from_config(CONFIG, env).get(TASK)
    assert route is not None
    broken = Budgets([Limit(provider="anthropic", rpm=60)], MemoryStore())  # not started
    resilience = Resilience(
        SETTINGS, KeyResolver(env), budgets=BudgetGate(broken, max_queue_wait_s=5)
    )

    async def call(_deployment: Any, _key: str) -> str:
        return "answered"

    with capture_logs() as logs:
        outcome = await resilience.run(route, None, call)
    assert outcome.value == "answered"
    assert outcome.deployment.provider == "anthropic"
    assert any(
        e["event"] == "budget_unavailable_call_unbudgeted" and e["provider"] == "anthropic"
        for e in logs
    )
