"""Specifications of ProxyCompletionHandler: request shape, error mapping, a real HTTP server
(`proxy_stub.serving` answers with each test's function)."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from consumer_support import request
from proxy_stub import Answer, serving

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
from consumers.errors import (
    AllProvidersRateLimited,
    DeadlineExceeded,
    HandlerError,
    ProviderFailed,
)
from consumers.proxy_client import ProxyClient
from consumers.proxy_handler import transport_errors
from core.redact import Redactor
from schemas import new_traceparent, trace_id_of

KEY = "plain-consumer-proxy-key-8d1c"


async def _no_progress(_stage: str, _progress: float, _message: str) -> None:
    return None


def _ctx(traceparent: str | None = None) -> HandlerContext:
    return HandlerContext(attempt=1, traceparent=traceparent, report=_no_progress)


async def _handled(
    handler: ProxyCompletionHandler, event: Any = None, traceparent: str | None = None
) -> Any:
    """`event` (a "hello" request when None) handled by `handler`, started and stopped around
    the call."""
    await handler.start()
    try:
        return await handler.handle(event or request("hello"), _ctx(traceparent))
    finally:
        await handler.stop()


async def _call(
    answer: Answer,
    *,
    traceparent: str | None = None,
    event: Any = None,
    timeout_s: float = 120.0,
) -> Any:
    async with serving(answer) as url:
        handler = ProxyCompletionHandler(url, api_key=KEY, timeout_s=timeout_s)
        return await _handled(handler, event, traceparent)


def _answer(seen: list[httpx.Request]) -> Any:
    def answer(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"model": "m", "choices": [{"message": {"content": "hi"}}]})

    return answer


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
    completion = await _call(answer, traceparent=parent)
    body = json.loads(seen[0].content)
    assert seen[0].url.path == "/v1/chat/completions"
    assert body == {"model": "captioning", "messages": [{"role": "user", "content": "hello"}]}
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert trace_id_of(seen[0].headers["traceparent"]) == trace_id_of(parent)
    assert (completion.content, completion.model, completion.usage.total_tokens) == (
        "hi",
        "claude-x",
        3,
    )


@pytest.mark.parametrize(
    ("status", "headers", "error", "retriable"),
    [
        (400, {}, ProviderBadRequest, False),
        (401, {}, ProviderAuthError, False),
        (403, {}, ProviderAuthError, False),
        (404, {}, ProviderNotFound, False),
        (422, {}, ProviderBadRequest, False),
        (429, {"x-gateway-retriable": "true"}, AllProvidersRateLimited, True),
        (429, {"retry-after": "2"}, ProviderRateLimited, True),
        (429, {"x-gateway-retriable": "false", "retry-after": "2"}, ProviderFailed, False),
        (429, {}, ProviderFailed, False),
        (500, {"x-gateway-retriable": "true"}, ProviderUnavailable, True),
        (503, {"x-gateway-retriable": "true"}, ProviderUnavailable, True),
        (504, {"x-gateway-retriable": "true"}, ProviderTimeout, True),
        (502, {"x-gateway-retriable": "false"}, ProviderFailed, False),
        (503, {}, ProviderFailed, False),
        (504, {}, ProviderFailed, False),
    ],
)
async def test_http_errors_map_to_the_error_tree(
    status: int, headers: dict[str, str], error: type[HandlerError], retriable: bool
) -> None:
    """Each proxy answer becomes one error class; only what the proxy marks retriable (or an
    unmarked server's 429 with Retry-After) may be sent again."""
    with pytest.raises(error) as caught:
        await _call(
            lambda _r: httpx.Response(
                status, headers=headers, json={"error": {"message": "nope", "type": "x"}}
            )
        )
    assert caught.value.retriable is retriable
    assert "nope" in str(caught.value)


async def test_the_proxys_deadline_answer_is_final() -> None:
    """A 504 deadline_exceeded from the proxy is DeadlineExceeded, never retried."""
    with pytest.raises(DeadlineExceeded) as caught:
        await _call(
            lambda _r: httpx.Response(
                504,
                headers={"x-gateway-retriable": "false"},
                json={"error": {"message": "deadline passed", "code": "deadline_exceeded"}},
            )
        )
    assert not caught.value.retriable


async def test_the_event_deadline_travels_as_the_timeout_header() -> None:
    """An event due in 30 s is sent with at most 30 000 ms of budget."""
    seen: list[httpx.Request] = []
    due = datetime.now(UTC) + timedelta(seconds=30)
    event = msgspec.structs.replace(request("hello"), deadline=due)
    await _call(_answer(seen), event=event)
    budget_ms = int(seen[0].headers["x-gateway-timeout-ms"])
    assert 25_000 < budget_ms <= 30_000


async def test_without_a_deadline_the_configured_budget_is_sent() -> None:
    """An event without a deadline gets `timeout_s` as its budget."""
    seen: list[httpx.Request] = []
    await _call(_answer(seen), timeout_s=45)
    assert seen[0].headers["x-gateway-timeout-ms"] == "45000"


async def test_an_answer_after_the_budget_is_still_read() -> None:
    """The handler waits a grace longer than the budget it sent, so a proxy answering at (or
    just after) its deadline is heard rather than cut off."""
    seen: list[httpx.Request] = []

    async def late(req: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)
        return _answer(seen)(req)

    completion = await _call(late, timeout_s=0.05)
    assert seen[0].headers["x-gateway-timeout-ms"] == "50"
    assert completion.content == "hi"


async def test_a_passed_deadline_sends_nothing() -> None:
    """An event whose deadline has passed raises DeadlineExceeded without calling the proxy."""
    seen: list[httpx.Request] = []
    event = msgspec.structs.replace(
        request("hello"), deadline=datetime.now(UTC) - timedelta(seconds=1)
    )
    with pytest.raises(DeadlineExceeded):
        await _call(_answer(seen), event=event)
    assert seen == []


async def test_rate_limited_carries_retry_after() -> None:
    """A 429's Retry-After header is exposed as retry_after_s."""
    with pytest.raises(ProviderRateLimited) as caught:
        await _call(
            lambda _r: httpx.Response(429, headers={"retry-after": "3"}, json={"error": {}})
        )
    assert caught.value.retry_after_s == 3.0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refused_connection_is_retriable() -> None:
    """A proxy that is not listening is ProviderUnavailable, retriable, naming no address."""
    handler = ProxyCompletionHandler(f"http://127.0.0.1:{_closed_port()}", api_key=KEY)
    with pytest.raises(ProviderUnavailable) as caught:
        await _handled(handler)
    assert caught.value.retriable
    assert "127.0.0.1" not in str(caught.value)


async def test_a_proxy_that_does_not_answer_in_time_is_a_retriable_timeout() -> None:
    """A request past its total timeout is ProviderTimeout, retriable."""
    never = asyncio.Event()

    async def silent(_r: httpx.Request) -> httpx.Response:
        await never.wait()
        return httpx.Response(200)

    async with serving(silent) as url:
        client = ProxyClient(url, api_key=KEY)
        await client.start()
        try:
            with pytest.raises(ProviderTimeout) as caught, transport_errors():
                await client.request("GET", "/v1/models", headers={}, timeout_s=0.2)
        finally:
            await client.stop()
    assert caught.value.retriable


async def test_the_key_never_appears_in_errors() -> None:
    """A proxy answer echoing the very key the handler sent does not carry it into the error."""
    sent: list[str] = []

    def echo(req: httpx.Request) -> httpx.Response:
        key = req.headers["authorization"].removeprefix("Bearer ")
        sent.append(key)
        return httpx.Response(401, json={"error": {"message": f"invalid key {key}"}})

    with pytest.raises(ProviderAuthError) as caught:
        await _call(echo)
    assert sent == [KEY]
    assert KEY not in str(caught.value)
    assert "invalid key [REDACTED]" in str(caught.value)


async def test_keys_the_process_knows_are_masked_too() -> None:
    """With the process's redactor handed down, every key it knows is masked in errors."""
    redactor = Redactor(["plain-provider-key-from-elsewhere"])
    async with serving(
        lambda _r: httpx.Response(
            400, json={"error": {"message": "plain-provider-key-from-elsewhere rejected"}}
        )
    ) as url:
        handler = ProxyCompletionHandler(url, api_key=KEY, redactor=redactor)
        with pytest.raises(ProviderBadRequest) as caught:
            await _handled(handler)
    assert "plain-provider-key-from-elsewhere" not in str(caught.value)
    # And the handler taught the shared redactor its own key, for the process's logs and events.
    assert redactor.scrub(KEY) == "[REDACTED]"


async def test_calls_a_real_openai_compatible_server(openai_emulator: Any) -> None:
    """Against the OpenAI emulator over HTTP the handler returns its completion."""
    before = openai_emulator.stats()["requests"]
    handler = ProxyCompletionHandler(f"{openai_emulator.url}", api_key="sk-test-" + "x" * 20)
    completion = await _handled(handler, request("Describe a red dress"))
    assert completion.content
    assert openai_emulator.stats()["requests"] == before + 1
