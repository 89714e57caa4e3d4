"""A streamed chat answer: the provider's chunks relayed as server-sent events.

Why it exists: a stream is answered differently from a whole answer (`proxy.chat_answer`).
Each attempt pulls the stream's first chunk, so a provider that fails before sending anything
is still retried or replaced by a fallback. After that first chunk the response has started
and nothing can be retried: the chunks are relayed as they come (the provider's usage chunk
held back unless the client asked for it, `proxy.usage`), the stream ends with the gateway's
`x_gateway` chunk (cost, latency) and `[DONE]`, and a failure midway ends it with an OpenAI
error event instead. The request's deadline bounds the whole stream, and the provider's
iterator is closed on every way out, client disconnect included.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import litellm
import orjson
import structlog

from proxy.accounting import RequestLedger, current_ledger
from proxy.asgi import Send, send_error
from proxy.budgeting import Demand
from proxy.chat_answer import LOGGER, ChatCalls, log_failure, log_served, loop_time, outcome_headers
from proxy.errors import DeadlineExceededError, ExternalServiceError
from proxy.limits import LimitViolation
from proxy.routing import Deployment, TaskRoute
from proxy.tracing import outgoing_headers
from proxy.upstream import translate
from proxy.usage import StreamUsage, with_usage

__all__ = ["stream"]


async def stream(
    calls: ChatCalls,
    route: TaskRoute,
    params: dict[str, Any],
    send: Send,
    *,
    user_id: str | None,
    deadline: float | None,
    reason: LimitViolation | None = None,
    demand: Demand | None = None,
) -> None:
    """Answer `params` on `route` as an event stream, or with the error of every try."""
    started = time.perf_counter()
    task = route.task
    transport = calls.transport
    # The provider is always asked for the stream's usage (the cost needs it); the client
    # sees it only if it asked (`proxy.usage`).
    tally = StreamUsage(StreamUsage.client_asked(params))
    params = with_usage(params)

    async def call(deployment: Deployment, key: str) -> tuple[Any, AsyncIterator[Any]]:
        direct = calls.direct(deployment, params)
        if direct is not None and transport is not None:
            iterator = transport.stream(
                deployment,
                key,
                direct,
                timeout_s=calls.timeout_s,
                extra_headers=outgoing_headers() or None,
            ).__aiter__()
        else:
            response = await litellm.acompletion(**calls.kwargs(deployment, key, params))
            iterator = response.__aiter__()
        # Pull the first chunk inside the attempt: until it has arrived nothing has been
        # sent to the client, so failures are still retried or moved to a fallback.
        try:
            first = await iterator.__anext__()
        except BaseException:
            await _close(iterator)
            raise
        return first, iterator

    try:
        outcome = await calls.resilience.run(route, user_id, call, deadline=deadline, demand=demand)
    except ExternalServiceError as error:
        log_failure(task, error, started)
        await send_error(send, error, calls.redactor)
        return
    log_served(task, outcome, started)
    first, iterator = outcome.value
    ledger = current_ledger()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
                *outcome_headers(outcome, task, reason),
            ],
        }
    )
    try:
        # The deadline bounds the whole answer, not only the wait for its first chunk.
        async with asyncio.timeout_at(deadline):
            await _relay(send, first, iterator, tally, ledger)
        cost = calls.account(outcome.deployment, tally.tokens, params)
        await send(
            {
                "type": "http.response.body",
                "body": tally.final_chunk(ledger, cost),
                "more_body": True,
            }
        )
    except Exception as exc:
        # After the first chunk nothing can be retried: end the stream with an error event.
        failure = (
            DeadlineExceededError(task, [])
            if isinstance(exc, TimeoutError) and deadline is not None and loop_time() >= deadline
            else translate(exc, outcome.deployment.provider, calls.redactor)
        )
        structlog.get_logger(LOGGER).warning(
            "stream_failed_midway", provider=failure.provider, error=failure.message
        )
        body = calls.redactor.scrub_bytes(orjson.dumps(failure.to_openai_body()))
        payload = b"data: " + body + b"\n\n"
        await send({"type": "http.response.body", "body": payload, "more_body": True})
    finally:
        # Also on client disconnect: release the provider connection now, not at GC time.
        await _close(iterator)
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def _relay(
    send: Send,
    first: Any,
    iterator: AsyncIterator[Any],
    tally: StreamUsage,
    ledger: RequestLedger | None,
) -> None:
    """Send the stream's chunks as they come, but its usage chunk (`proxy.usage`)."""
    chunk: Any = first
    while True:
        if not tally.hold(chunk):
            await send({"type": "http.response.body", "body": _sse(chunk), "more_body": True})
        waited = time.perf_counter()
        try:
            chunk = await iterator.__anext__()
        except StopAsyncIteration:
            return
        finally:
            if ledger is not None:
                # Waiting for the provider's next chunk is upstream time too.
                ledger.upstream_s += time.perf_counter() - waited


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def _sse(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, dict):
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
    text: str = chunk.model_dump_json(exclude_none=True)
    return b"data: " + text.encode() + b"\n\n"
