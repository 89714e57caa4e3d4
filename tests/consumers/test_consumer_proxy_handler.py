"""Specifications of ProxyCompletionHandler: request shape, error mapping, a real HTTP server."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from consumer_support import request

from consumers import (
    HandlerContext,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    ProxyCompletionHandler,
)
from consumers.errors import HandlerError
from schemas import new_traceparent, trace_id_of


async def _no_progress(_stage: str, _progress: float, _message: str) -> None:
    return None


def _ctx(traceparent: str | None = None) -> HandlerContext:
    return HandlerContext(attempt=1, traceparent=traceparent, report=_no_progress)


async def _call(transport: httpx.MockTransport, *, traceparent: str | None = None) -> Any:
    handler = ProxyCompletionHandler("http://proxy.test", api_key="k" * 20, transport=transport)
    await handler.start()
    try:
        return await handler.handle(request("hello"), _ctx(traceparent))
    finally:
        await handler.stop()


async def test_sends_task_as_model_with_messages_and_key() -> None:
    """The body is an OpenAI chat request whose model is the task; auth is a Bearer key."""
    seen: list[httpx.Request] = []

    def answer(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(
            200,
            json={
                "model": "claude-x",
                "choices": [{"message": {"role": "assistant", "content": "hi"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            },
        )

    parent = new_traceparent()
    completion = await _call(httpx.MockTransport(answer), traceparent=parent)
    body = json.loads(seen[0].content)
    assert seen[0].url.path == "/v1/chat/completions"
    assert body == {"model": "captioning", "messages": [{"role": "user", "content": "hello"}]}
    assert seen[0].headers["authorization"] == "Bearer " + "k" * 20
    assert trace_id_of(seen[0].headers["traceparent"]) == trace_id_of(parent)
    assert (completion.content, completion.model, completion.usage.total_tokens) == (
        "hi",
        "claude-x",
        3,
    )


@pytest.mark.parametrize(
    ("status", "error", "retriable"),
    [
        (400, ProviderBadRequest, False),
        (401, ProviderAuthError, False),
        (403, ProviderAuthError, False),
        (404, ProviderNotFound, False),
        (422, ProviderBadRequest, False),
        (429, ProviderRateLimited, True),
        (500, ProviderUnavailable, True),
        (503, ProviderUnavailable, True),
        (504, ProviderTimeout, True),
    ],
)
async def test_http_errors_map_to_the_error_tree(
    status: int, error: type[HandlerError], retriable: bool
) -> None:
    """Each proxy status becomes one error class with the right retriable flag."""
    transport = httpx.MockTransport(
        lambda _r: httpx.Response(status, json={"error": {"message": "nope", "type": "x"}})
    )
    with pytest.raises(error) as caught:
        await _call(transport)
    assert caught.value.retriable is retriable
    assert "nope" in str(caught.value)


async def test_rate_limited_carries_retry_after() -> None:
    """A 429's Retry-After header is exposed as retry_after_s."""
    transport = httpx.MockTransport(
        lambda _r: httpx.Response(429, headers={"retry-after": "3"}, json={"error": {}})
    )
    with pytest.raises(ProviderRateLimited) as caught:
        await _call(transport)
    assert caught.value.retry_after_s == 3.0


async def test_transport_failures_are_retriable() -> None:
    """Connection errors and timeouts map to retriable errors."""

    def refuse(_r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    def slow(_r: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    with pytest.raises(ProviderUnavailable):
        await _call(httpx.MockTransport(refuse))
    with pytest.raises(ProviderTimeout):
        await _call(httpx.MockTransport(slow))


async def test_the_key_never_appears_in_errors() -> None:
    """An error body echoing the key does not leak it through the raised error."""
    key = "k" * 20
    transport = httpx.MockTransport(
        lambda _r: httpx.Response(401, json={"error": {"message": "invalid key"}})
    )
    with pytest.raises(ProviderAuthError) as caught:
        await _call(transport)
    assert key not in str(caught.value)


async def test_calls_a_real_openai_compatible_server(openai_emulator: Any) -> None:
    """Against the OpenAI emulator over HTTP the handler returns its completion."""
    before = openai_emulator.stats()["requests"]
    handler = ProxyCompletionHandler(f"{openai_emulator.url}", api_key="sk-test-" + "x" * 20)
    await handler.start()
    try:
        completion = await handler.handle(request("Describe a red dress"), _ctx())
    finally:
        await handler.stop()
    assert completion.content
    assert openai_emulator.stats()["requests"] == before + 1
