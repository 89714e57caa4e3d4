"""Rate limits as the consumers see them: the proxy holds the budgets, and a 429 it answers
holds every call of that task until its Retry-After."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from consumer_support import TopicReader, fast_settings, produce, request

from consumers import ConsumerService, ProxyCompletionHandler
from consumers.backpressure import RetryAfterHold
from consumers.errors import AllProvidersRateLimited, ProviderRateLimited
from consumers.proxy_client import ProxyResponse
from consumers.proxy_handler import error_for_response
from consumers.settings import RetrySettings
from core.redact import Redactor
from schemas import CompletionSucceeded


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_hold_covers_its_task_until_the_retry_after() -> None:
    """A 2 s hold on one task keeps that task waiting 2 s, leaves others free, and a shorter
    hold arriving later does not cut it."""
    clock = _Clock()
    hold = RetryAfterHold(clock=clock)
    hold.hold("captioning", 2.0)
    hold.hold("captioning", 0.5)
    assert hold.remaining("captioning") == pytest.approx(2.0)
    assert hold.remaining("styling") == 0.0
    clock.now += 2.5
    assert hold.remaining("captioning") == 0.0


async def test_waiting_on_a_hold_stops_at_the_limit() -> None:
    """A hold longer than the event's time left is waited out only until that time."""
    hold = RetryAfterHold()
    hold.hold("captioning", 30.0)
    assert await hold.wait("captioning", limit_s=0.05) == pytest.approx(0.05)


def _answer(code: str) -> ProxyResponse:
    return ProxyResponse(
        429,
        {"x-gateway-retriable": "true", "retry-after": "7"},
        msgspec.json.encode({"error": {"message": "busy", "code": code}}),
    )


def test_a_budget_429_is_a_plain_wait_and_a_chain_429_a_spent_delivery() -> None:
    """The proxy's budget refusal (`rate_limit_exceeded`, no provider called) costs no
    delivery; a chain whose providers all answered 429 does."""
    budget = error_for_response(_answer("rate_limit_exceeded"), Redactor())
    chain = error_for_response(_answer("all_providers_failed"), Redactor())
    assert type(budget) is ProviderRateLimited and budget.retry_after_s == 7
    assert isinstance(chain, AllProvidersRateLimited)


@pytest.mark.slow
async def test_429s_hold_the_consumer_back(kafka_broker: Any, openai_emulator: Any) -> None:
    """Against an upstream allowing 10/s that answers 429 with Retry-After, every event still
    succeeds: each 429 holds the task's calls back until then, and the event is sent again."""
    openai_emulator.reset()
    openai_emulator.configure(rate_limit_rps=10, rate_limit_burst=5)
    # A plain upstream does not queue as the proxy does, so every held call comes back at
    # once: the 429s' own budget must allow for a few rounds.
    retry = RetrySettings(initial_backoff_s=0.05, max_backoff_s=0.5, max_rate_limited_retries=50)
    settings = fast_settings(kafka_broker, retry=retry)
    handler = ProxyCompletionHandler(openai_emulator.url, api_key="sk-test-" + "q" * 24)
    try:
        async with ConsumerService(settings, handler):
            events = [request(f"look {i}") for i in range(30)]
            await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, events)
            async with TopicReader(
                kafka_broker.bootstrap_servers, settings.topics.results.name
            ) as r:
                await r.until(lambda rd: len(rd.records) >= 30, timeout_s=60)
        stats = openai_emulator.stats()
    finally:
        openai_emulator.reset()
    assert all(isinstance(res, CompletionSucceeded) for res in r.results()), [
        res for res in r.results() if not isinstance(res, CompletionSucceeded)
    ][:2]
    assert stats["requests"] > 30  # the upstream did push back
