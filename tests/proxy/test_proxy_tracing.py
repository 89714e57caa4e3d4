"""One trace from a Kafka event to the provider: the event's traceparent, the proxy's server
span, its span per provider attempt and the traceparent the provider (emulator) received share
one trace id, each span the child of the one before."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from observed_proxy import ObservedProxy, wait_for_spans
from proxy_support import MASTER_KEY, ThreadedProxy, write_config

from consumers.handlers import HandlerRegistry
from consumers.invoker import HandlerInvoker
from consumers.metrics import ConsumerMetrics
from consumers.proxy_handler import ProxyCompletionHandler
from consumers.publisher import EventPublisher
from consumers.retry import RetryPolicy
from consumers.settings import KafkaSettings
from core.config import ConfigError
from emulators.testing import EmulatorHandle
from proxy.settings import build_settings
from schemas import ChatMessage, CompletionRequested, EventCodec, new_traceparent, trace_id_of


@pytest.fixture
async def invoker(observed: ObservedProxy) -> AsyncIterator[HandlerInvoker]:
    """The consumers' invoker over the proxy handler, as a consumer runs it per event."""
    settings = KafkaSettings()
    handler = ProxyCompletionHandler(observed.url, api_key=MASTER_KEY)
    await handler.start()
    yield HandlerInvoker(
        settings=settings,
        registry=HandlerRegistry({"*": handler}),
        publisher=EventPublisher(settings, "127.0.0.1:1", EventCodec()),
        metrics=ConsumerMetrics(),
        policy=RetryPolicy(settings.retry),
    )
    await handler.stop()


def _span_id(traceparent: str) -> str:
    return traceparent.split("-")[2]


def _trace(spans: list[dict[str, Any]], trace_id: str) -> list[dict[str, Any]]:
    return [span for span in spans if span["trace_id"] == trace_id]


def _server_and_attempts(
    observed: ObservedProxy, trace_id: str, attempts: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    def complete(spans: list[dict[str, Any]]) -> bool:
        kinds = [span["kind"] for span in _trace(spans, trace_id)]
        return "SERVER" in kinds and kinds.count("CLIENT") >= attempts

    spans = _trace(wait_for_spans(observed.spans, complete), trace_id)
    (server,) = [span for span in spans if span["kind"] == "SERVER"]
    clients = sorted(
        (span for span in spans if span["kind"] == "CLIENT"),
        key=lambda span: span["attributes"]["gateway.attempt"],
    )
    return server, clients


@pytest.mark.parametrize(
    ("task", "provider"), [("video-summarization", "anthropic"), ("styling", "gemini")]
)
async def test_an_events_trace_reaches_the_provider(
    task: str,
    provider: str,
    observed: ObservedProxy,
    invoker: HandlerInvoker,
    emulators: dict[str, EmulatorHandle],
) -> None:
    """Event -> proxy server span -> attempt span -> the provider's traceparent: one trace id,
    each the parent of the next."""
    parent = new_traceparent()
    trace_id = trace_id_of(parent)
    assert trace_id is not None
    event = CompletionRequested(
        event_id=str(uuid.uuid4()),
        subject="sku-7",
        task=task,
        messages=[ChatMessage(role="user", content=f"describe {uuid.uuid4().hex}")],
    )
    outcome, _attempts, _errors = await invoker.handle(event, parent)
    assert getattr(outcome, "provider", None) == provider
    server, (attempt,) = _server_and_attempts(observed, trace_id, 1)
    (received,) = emulators[provider].stats()["traceparents"]
    assert trace_id_of(received) == trace_id
    assert _span_id(received) == attempt["span_id"]
    assert attempt["parent_span_id"] == server["span_id"]
    # The consumer sends a child of the event's span, never the event's span itself.
    assert server["parent_span_id"] not in (None, _span_id(parent))
    assert attempt["attributes"] | {"gateway.task": task} == {
        "gateway.task": task,
        "gateway.provider": provider,
        "gateway.model": attempt["attributes"]["gateway.model"],
        "gateway.attempt": 1,
        "http.response.status_code": 200,
    }
    assert server["attributes"]["gateway.provider"] == provider


def test_each_attempt_of_a_fallback_chain_has_its_span(
    observed: ObservedProxy, emulators: dict[str, EmulatorHandle]
) -> None:
    """An HTTP request with a traceparent, its primary failing: one span per attempt with
    its provider and status, the failed ones marked as errors; only the served attempt's
    provider answered, under the same trace."""
    emulators["anthropic"].set_fault("503")
    parent = new_traceparent()
    trace_id = trace_id_of(parent)
    assert trace_id is not None
    answer = httpx.post(
        f"{observed.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}", "traceparent": parent},
        json={"model": "captioning", "messages": [{"role": "user", "content": "a scarf"}]},
        timeout=30,
    )
    assert answer.status_code == 200
    server, attempts = _server_and_attempts(observed, trace_id, 4)
    assert server["parent_span_id"] == _span_id(parent)
    providers = [span["attributes"]["gateway.provider"] for span in attempts]
    assert providers == ["anthropic", "anthropic", "anthropic", "gemini"]
    assert [span["status"] for span in attempts] == ["ERROR", "ERROR", "ERROR", "UNSET"]
    assert all(span["attributes"]["http.response.status_code"] >= 500 for span in attempts[:3])
    assert all(span["parent_span_id"] == server["span_id"] for span in attempts)
    (received,) = emulators["gemini"].stats()["traceparents"]
    assert _span_id(received) == attempts[3]["span_id"]


def test_without_tracing_the_provider_gets_no_traceparent(
    proxy: ThreadedProxy, emulators: dict[str, EmulatorHandle]
) -> None:
    """With `exporter: none` (the session's proxy) no span exists, so none is propagated."""
    with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0) as sdk:
        sdk.chat.completions.create(
            model="styling",
            messages=[{"role": "user", "content": "a hat"}],
            extra_headers={"traceparent": new_traceparent()},
        )
    assert emulators["gemini"].stats()["traceparents"] == []


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"exporter": "otlp"}, "exporter must be 'none' or 'jsonl'"),
        ({"exporter": "jsonl"}, "exporter jsonl needs a path"),
    ],
)
def test_a_tracing_section_it_cannot_serve_stops_the_start(
    tmp_path: Path, section: dict[str, str], message: str
) -> None:
    """An unknown exporter, or jsonl without a file, is a ConfigError naming the problem."""

    def edit(data: dict[str, Any]) -> None:
        data["gateway_settings"]["tracing"] = section

    config = write_config(tmp_path / "litellm_config.yaml", edit)
    with pytest.raises(ConfigError, match=message):
        build_settings(config, {}, master_key=MASTER_KEY)
