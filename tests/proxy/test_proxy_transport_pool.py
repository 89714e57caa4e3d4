"""The direct transport's connection pool: how many calls one proxy process keeps in flight
to a provider (`gateway_settings.limits.max_upstream_connections`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from transport_support import user

from proxy.routing import Deployment
from proxy.settings import LimitsSettings
from proxy.transport import Transport

# Why a server of its own rather than the emulator: it holds every call until `expected` are
# in flight at once, so the peak it sees is the pool's limit or `expected`, whatever the
# machine's speed (a call is released after a safety wait should the peak never come).
SAFETY_S = 20.0


class HoldingServer:
    """An OpenAI-shaped chat endpoint that answers once `expected` calls are in flight."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.in_flight = 0
        self.peak = 0
        self._reached = asyncio.Event()

    async def chat(self, request: web.Request) -> web.Response:
        await request.read()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.expected:
            self._reached.set()
        try:
            await asyncio.wait_for(self._reached.wait(), SAFETY_S)
        except TimeoutError:
            pass
        finally:
            self.in_flight -= 1
        return web.json_response(
            {
                "id": "chatcmpl-held",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "gpt-4o",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "held"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        )


@pytest.fixture
async def holding() -> AsyncIterator[tuple[HoldingServer, str]]:
    server = HoldingServer(expected=200)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server, f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def _target(base: str) -> Deployment:
    return Deployment(
        group="tests",
        provider="openai",
        model="openai/gpt-4o",
        key_env=None,
        literal_key=None,
        params={"model": "openai/gpt-4o", "api_base": base},
    )


async def _calls(transport: Transport, base: str, count: int) -> list[Any]:
    target = _target(base)
    await transport.start()
    try:
        return await asyncio.gather(
            *(
                transport.complete(target, "sk-pool", {"messages": user("hi")}, timeout_s=60)
                for _ in range(count)
            )
        )
    finally:
        await transport.aclose()


async def test_the_default_pool_holds_more_calls_than_a_worker_used_to(
    holding: tuple[HoldingServer, str],
) -> None:
    """200 concurrent calls are all in flight at once with the default limit (512): a model
    that takes seconds to answer is not capped at 64 calls per proxy process."""
    server, base = holding
    limit = LimitsSettings().max_upstream_connections
    assert limit >= server.expected
    answers = await _calls(Transport(max_connections=limit), base, server.expected)
    assert [a["choices"][0]["message"]["content"] for a in answers] == ["held"] * server.expected
    assert server.peak == server.expected


async def test_a_configured_limit_bounds_the_calls_in_flight(
    holding: tuple[HoldingServer, str],
) -> None:
    """With max_upstream_connections 16, the provider never sees more than 16 calls at once,
    and every call is still answered (the others waited for a connection)."""
    server, base = holding
    server.expected = 16
    answers = await _calls(Transport(max_connections=16), base, 40)
    assert len(answers) == 40
    assert server.peak == 16


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_upstream_connections"):
        LimitsSettings(max_upstream_connections=0)
