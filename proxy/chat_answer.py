"""A chat answer for one of the tasks: the provider calls, the cost, the headers, the logs.

Why it exists: the fast path (`proxy.fastpath`) decides that the gateway answers a request;
this module answers it. `ChatCalls` holds what every answer needs of the process (the
resilience loop, the limits, the prices, the direct transport), built once. `complete` sends a
whole (non-streamed) answer: one provider call per attempt under `proxy.resilience`, through
the direct transport when it owns the request, else `litellm.acompletion`, with `n` fanned out
as separate calls where the deployment has no native `n` (`proxy.limits.fan_out`). A streamed
answer is sent by `proxy.chat_stream`, with the same headers, cost accounting and logs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import litellm
import orjson
import structlog

from core.redact import Redactor
from proxy.accounting import PriceBook, count_images, current_ledger
from proxy.asgi import Send, send_error, send_json
from proxy.budgeting import Demand
from proxy.chat_params import direct_params, litellm_kwargs
from proxy.errors import ExternalServiceError
from proxy.limits import Limits, LimitViolation, fan_out
from proxy.resilience import Outcome, Resilience
from proxy.routing import Deployment, TaskRoute
from proxy.tracing import outgoing_headers
from proxy.transport import Transport
from proxy.usage import usage_tokens

__all__ = [
    "LOGGER",
    "ChatCalls",
    "complete",
    "log_failure",
    "log_served",
    "loop_time",
    "outcome_headers",
]

# The chat path logs as one: its events keep the fast path's logger name, whichever module
# of it emits them.
LOGGER = "proxy.fastpath"


@dataclass(frozen=True, slots=True)
class ChatCalls:
    """What answering a chat request needs of the process, built once by the fast path."""

    resilience: Resilience
    limits: Limits
    # Token prices of every deployment, resolved at start-up (`proxy.accounting`).
    prices: PriceBook
    redactor: Redactor
    timeout_s: float
    # Direct provider calls for the requests it owns; None: all go through LiteLLM.
    transport: Transport | None = None

    def kwargs(self, deployment: Deployment, key: str, params: dict[str, Any]) -> dict[str, Any]:
        """The arguments of one `litellm.acompletion` attempt."""
        return litellm_kwargs(deployment, key, params, timeout_s=self.timeout_s)

    def direct(self, deployment: Deployment, params: dict[str, Any]) -> dict[str, Any] | None:
        """The request's params when the direct transport serves it on `deployment`."""
        return direct_params(self.transport, deployment, params)

    def account(
        self, deployment: Deployment, tokens: tuple[int, int] | None, params: dict[str, Any]
    ) -> float | None:
        """The answer's cost, recorded with its tokens in the request's ledger."""
        prompt, completion = tokens if tokens is not None else (0, 0)
        per_image = self.prices.wants_images(deployment.model)
        images = count_images(params.get("messages")) if per_image else 0
        cost = (
            self.prices.chat_cost(deployment.model, prompt, completion, images)
            if tokens is not None
            else None
        )
        ledger = current_ledger()
        if ledger is not None:
            ledger.prompt_tokens += prompt
            ledger.completion_tokens += completion
            ledger.cost_usd = cost
        return cost


async def complete(
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
    """Answer `params` on `route` with one JSON chat completion, or the error of every try."""
    started = time.perf_counter()
    task = route.task
    transport = calls.transport

    async def call(deployment: Deployment, key: str) -> Any:
        copies = calls.limits.copies(deployment, params)
        direct = calls.direct(deployment, params) if copies == 1 else None
        if direct is not None and transport is not None:
            return await transport.complete(
                deployment,
                key,
                direct,
                timeout_s=calls.timeout_s,
                # The attempt's span is current: the provider's request continues the trace.
                extra_headers=outgoing_headers() or None,
            )
        kwargs = calls.kwargs(deployment, key, params)
        if copies > 1:
            # No native `n` here: n separate calls, merged (`proxy.limits.fan_out`).
            kwargs.pop("n", None)
            return await fan_out(copies, lambda: litellm.acompletion(**kwargs))
        return await litellm.acompletion(**kwargs)

    try:
        outcome = await calls.resilience.run(route, user_id, call, deadline=deadline, demand=demand)
    except ExternalServiceError as error:
        log_failure(task, error, started)
        await send_error(send, error, calls.redactor)
        return
    log_served(task, outcome, started)
    calls.account(outcome.deployment, usage_tokens(outcome.value), params)
    body = _json(outcome.value)
    await send_json(send, 200, body, outcome_headers(outcome, task, reason))


def outcome_headers(
    outcome: Outcome[Any], task: str, reason: LimitViolation | None = None
) -> list[tuple[bytes, bytes]]:
    """The `x-gateway-*` headers of an answer: who answered it, after how many attempts."""
    headers = [
        (b"x-gateway-task", task.encode()),
        (b"x-gateway-provider", outcome.deployment.provider.encode()),
        (b"x-gateway-model", outcome.deployment.model.encode()),
        (b"x-gateway-attempts", str(outcome.total_attempts).encode()),
        (b"x-gateway-fallback", b"true" if outcome.fallback or reason else b"false"),
    ]
    if reason is not None:
        # The primary's limit that moved the request to a fallback (`proxy.limits`).
        headers.append((b"x-gateway-fallback-reason", str(reason).encode("ascii", "replace")))
    return headers


def loop_time() -> float:
    """The running loop's clock, the one deadlines are set on."""
    return asyncio.get_running_loop().time()


def log_served(task: str, outcome: Outcome[Any], started: float) -> None:
    """Log an answered request: who answered, after how many attempts, how long it took."""
    structlog.get_logger(LOGGER).info(
        "chat_completion_served",
        task=task,
        provider=outcome.deployment.provider,
        model=outcome.deployment.model,
        attempts=outcome.total_attempts,
        fallback=outcome.fallback,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )


def log_failure(task: str, error: ExternalServiceError, started: float) -> None:
    """Log a request that no attempt could answer."""
    structlog.get_logger(LOGGER).warning(
        "chat_completion_failed",
        task=task,
        status=error.status_code,
        error_type=type(error).__name__,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _json(value: Any) -> bytes:
    # The direct transport answers with dicts, LiteLLM with pydantic objects.
    return orjson.dumps(value if isinstance(value, dict) else value.model_dump())
