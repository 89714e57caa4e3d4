"""One owner of retries: what an outage costs per event, counted at the emulators, and the
event's deadline travelling from the consumer's invoker through the proxy.

The consumer side is the real thing (ProxyCompletionHandler under HandlerInvoker, the retry
policy of the consumers) against the session's proxy; only Kafka is left out, since the
question is how many provider calls one delivered event may cause.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from proxy_support import MASTER_KEY, TEST_RESILIENCE, ThreadedProxy

from consumers.errors import AllProvidersRateLimited, DeadlineExceeded, ProviderUnavailable
from consumers.handlers import HandlerRegistry
from consumers.invoker import HandlerInvoker
from consumers.metrics import ConsumerMetrics
from consumers.proxy_handler import ProxyCompletionHandler
from consumers.publisher import EventPublisher
from consumers.retry import RetryPolicy
from consumers.settings import KafkaSettings, RetrySettings
from emulators.testing import EmulatorHandle
from proxy.resilience import chain_bound
from proxy.settings import ResilienceSettings
from schemas import ChatMessage, CompletionRequested, EventCodec, new_traceparent

# video-summarization: anthropic -> openai -> gemini, the longest route of the config.
TASK = "video-summarization"
PROVIDERS = 3
DELIVERIES = 2


def _event(deadline: datetime | None = None) -> CompletionRequested:
    return CompletionRequested(
        event_id=str(uuid.uuid4()),
        subject=str(uuid.uuid4()),
        task=TASK,
        messages=[ChatMessage(role="user", content=f"summarise {uuid.uuid4().hex}")],
        deadline=deadline,
    )


@pytest.fixture
async def invoker(proxy: ThreadedProxy) -> AsyncIterator[HandlerInvoker]:
    """The consumers' invoker over the proxy handler, with generous consumer retry settings:
    only the handler's delivery budget may bound the deliveries."""
    settings = KafkaSettings(
        retry=RetrySettings(initial_backoff_s=0.01, max_backoff_s=0.02, max_attempts=10)
    )
    handler = ProxyCompletionHandler(proxy.url, api_key=MASTER_KEY, max_deliveries=DELIVERIES)
    await handler.start()
    yield HandlerInvoker(
        settings=settings,
        registry=HandlerRegistry({"*": handler}),
        # Progress reports are the only use; the proxy handler makes none.
        publisher=EventPublisher(settings, "127.0.0.1:1", EventCodec()),
        metrics=ConsumerMetrics(),
        policy=RetryPolicy(settings.retry),
    )
    await handler.stop()


def _calls(emulators: dict[str, EmulatorHandle]) -> int:
    return sum(int(handle.stats()["requests"]) for handle in emulators.values())


@pytest.mark.parametrize(
    ("fault", "final"),
    [("503", ProviderUnavailable), ("429:retry-after=0", AllProvidersRateLimited)],
)
async def test_an_outage_costs_the_documented_number_of_provider_calls(
    fault: str,
    final: type[Exception],
    invoker: HandlerInvoker,
    emulators: dict[str, EmulatorHandle],
) -> None:
    """Every provider failing (503s, or 429s): one event costs max_deliveries x attempts x
    providers provider calls (2 x 3 x 3 = 18 with the defaults), then fails retriably."""
    for handle in emulators.values():
        handle.set_fault(fault)
    outcome, _attempts, _errors = await invoker.handle(_event(), new_traceparent())
    bound = DELIVERIES * chain_bound(ResilienceSettings(**TEST_RESILIENCE), PROVIDERS).calls
    assert isinstance(outcome, final)
    assert _calls(emulators) == bound == 18


async def test_a_final_chain_failure_is_not_delivered_again(
    invoker: HandlerInvoker, emulators: dict[str, EmulatorHandle]
) -> None:
    """A chain ending in a provider refusing our key is final: one delivery, one chain."""
    emulators["anthropic"].set_fault("503")
    emulators["openai"].set_fault("503")
    emulators["gemini"].set_fault("401")
    outcome, attempts, _errors = await invoker.handle(_event(), new_traceparent())
    assert not getattr(outcome, "retriable", True)
    assert attempts == 1
    assert _calls(emulators) == 3 + 3 + 1


async def test_the_events_deadline_reaches_the_proxy(
    invoker: HandlerInvoker, emulators: dict[str, EmulatorHandle]
) -> None:
    """An event due in 0.5 s, its primary hanging: the proxy cancels that one call at the
    deadline and tries no fallback; the consumer gives up too."""
    emulators["anthropic"].set_fault("hang")
    due = datetime.now(UTC) + timedelta(milliseconds=500)
    outcome, _attempts, _errors = await invoker.handle(_event(due), new_traceparent())
    assert isinstance(outcome, DeadlineExceeded)
    assert int(emulators["anthropic"].stats()["requests"]) == 1
    assert _calls(emulators) == 1


async def test_a_passed_deadline_costs_no_call(
    invoker: HandlerInvoker, emulators: dict[str, EmulatorHandle]
) -> None:
    """An event delivered after its deadline fails at once, without any provider call."""
    late = msgspec.structs.replace(_event(), deadline=datetime.now(UTC) - timedelta(seconds=1))
    outcome, attempts, _errors = await invoker.handle(late, new_traceparent())
    assert isinstance(outcome, DeadlineExceeded)
    assert attempts == 0
    assert _calls(emulators) == 0
