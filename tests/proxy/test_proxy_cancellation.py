"""The proxy abandons work nobody waits for: a client that hangs up, or a deadline that passes,
cancels the provider call in flight, observed at a provider that never answers."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import structlog
from local_gateway import MASTER_KEY, SlowUpstream, local_gateway

_BODY = {"model": "local", "messages": [{"role": "user", "content": "hello"}]}
_AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


async def test_client_disconnect_cancels_the_provider_call() -> None:
    """The client hangs up while the provider is still thinking: the gateway closes its
    connection to the provider (the request is abandoned there) and starts no other call."""
    async with SlowUpstream() as upstream, local_gateway(upstream.url) as url:
        with structlog.testing.capture_logs() as logs:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                call = asyncio.create_task(
                    client.post("/v1/chat/completions", json=_BODY, headers=_AUTH)
                )
                await asyncio.wait_for(upstream.received.wait(), 30)
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await call
            # Without the gateway's disconnect watch this waits for its 60 s attempt timeout.
            await asyncio.wait_for(upstream.hung_up.wait(), 30)
        assert (upstream.opened, upstream.abandoned) == (1, 1)
        assert [e["reason"] for e in logs if e["event"] == "chat_completion_abandoned"] == [
            "client_disconnected"
        ]


async def test_deadline_cancels_the_provider_call_and_answers_504() -> None:
    """x-gateway-timeout-ms shorter than the provider takes: the provider's connection is
    closed and the client gets a final 504 instead of waiting for the attempt timeout."""
    async with SlowUpstream() as upstream, local_gateway(upstream.url) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            response = await client.post(
                "/v1/chat/completions",
                json=_BODY,
                headers={**_AUTH, "x-gateway-timeout-ms": "300"},
            )
        await asyncio.wait_for(upstream.hung_up.wait(), 30)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "deadline_exceeded"
    assert response.headers["x-gateway-retriable"] == "false"
    assert upstream.opened == 1
