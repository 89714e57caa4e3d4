"""Kafka results carry the proxy's accounting: an event handled by the consumers' invoker over
ProxyCompletionHandler against the session's proxy becomes a result with its cost and latency
split, which survives the results topic's encoding."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import litellm
import pytest
from proxy_support import MASTER_KEY, ThreadedProxy

from consumers.handlers import HandlerRegistry
from consumers.invoker import HandlerInvoker
from consumers.kinds import COMPLETION
from consumers.metrics import ConsumerMetrics
from consumers.proxy_handler import ProxyCompletionHandler
from consumers.publisher import EventPublisher
from consumers.results import result_for
from consumers.retry import RetryPolicy
from consumers.settings import KafkaSettings
from emulators.testing import EmulatorHandle
from schemas import (
    ChatMessage,
    CompletionRequested,
    CompletionSucceeded,
    EventCodec,
    new_traceparent,
)


@pytest.fixture
async def invoker(proxy: ThreadedProxy) -> AsyncIterator[HandlerInvoker]:
    """The consumers' invoker over the proxy handler (Kafka itself is not needed here)."""
    settings = KafkaSettings()
    handler = ProxyCompletionHandler(proxy.url, api_key=MASTER_KEY)
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


async def test_a_result_carries_the_answers_cost_and_latency_split(
    invoker: HandlerInvoker, emulators: dict[str, EmulatorHandle]
) -> None:
    """The success result of a video-summarization event holds cost_usd (LiteLLM's price of
    its usage) and proxy_latency_ms, also after encoding and decoding."""
    event = CompletionRequested(
        event_id=str(uuid.uuid4()),
        subject="sku-1",
        task="video-summarization",
        messages=[ChatMessage(role="user", content=f"summarise {uuid.uuid4().hex}")],
    )
    started = time.monotonic()
    handled = await invoker.handle(event, new_traceparent())
    codec = EventCodec()
    result = codec.decode_result(codec.encode(result_for(COMPLETION, event, handled, started)))
    assert isinstance(result, CompletionSucceeded)
    assert result.usage is not None and result.cost_usd is not None
    cost_in, cost_out = litellm.cost_per_token(
        model="anthropic/claude-sonnet-4-5",
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
    )
    assert result.cost_usd == pytest.approx(cost_in + cost_out, abs=1e-6)
    latency = result.proxy_latency_ms
    assert latency is not None
    assert latency.total >= latency.upstream > 0
    assert latency.overhead == pytest.approx(
        latency.total - latency.upstream - latency.queue, abs=0.2
    )
    assert emulators["anthropic"].stats()["requests"] == 1


def test_a_result_without_the_new_fields_still_decodes() -> None:
    """A success result written before cost and latency existed decodes with them unset."""
    raw = (
        b'{"type":"completion.succeeded","event_id":"e.result","request_id":"e",'
        b'"subject":"s","task":"captioning","provider":"anthropic","model":"m"}'
    )
    result = EventCodec().decode_result(raw)
    assert isinstance(result, CompletionSucceeded)
    assert (result.cost_usd, result.proxy_latency_ms) == (None, None)
