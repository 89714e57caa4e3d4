"""The proxy's side of the provider budgets (`budgets`): what a call demands, and how a
budget's answers become the proxy's errors.

Why a module: `proxy.resilience` asks the budget once per attempt and must stay a retry
policy; what a request demands (a token estimate, its priority from `x-gateway-priority`),
reading the tokens an answer used, and translating a budget's refusal into
`BudgetWaitTooLongError` (the task's next provider serves) live here. A budget store that
fails (Redis gone mid-run) lets calls through unbudgeted, logged, rather than failing them:
the budget protects the providers, it must not take the gateway down with Redis. A
streaming call's concurrency lease ends with its attempt, i.e. once its first chunk arrived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from budgets import PRIORITIES, BudgetError, BudgetExhausted, Budgets, Grant, Priority
from budgets import estimate_tokens as _estimate
from core.http import PRIORITY_HEADER
from proxy.accounting import record_queue_wait
from proxy.errors import AttemptFailure, BudgetWaitTooLongError, InvalidRequestError
from proxy.routing import Deployment

__all__ = [
    "PRIORITY_HEADER",
    "BudgetGate",
    "Demand",
    "budgets_saturated",
    "demand_of",
]


@dataclass(frozen=True, slots=True)
class Demand:
    """What one request asks of a budget: its token estimate and its priority."""

    tokens: int = 0
    priority: Priority = "normal"


def demand_of(priority: bytes | str | None, params: Mapping[str, Any]) -> Demand:
    """A chat request's demand: prompt characters / 4 + max_tokens, and `x-gateway-priority`
    (high, normal, low; default normal). Raises InvalidRequestError naming a bad header."""
    if isinstance(priority, bytes):
        priority = priority.decode("latin-1")
    chosen = (priority or "normal").strip().lower()
    if chosen not in PRIORITIES:
        raise InvalidRequestError(
            f"{PRIORITY_HEADER} must be one of high, normal, low (got {chosen[:20]!r})"
        )
    messages = params.get("messages")
    limit = params.get("max_completion_tokens", params.get("max_tokens"))
    tokens = _estimate(
        messages if isinstance(messages, list) else (),
        limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
    )
    return Demand(tokens=tokens, priority=chosen)


def _tokens_used(value: Any) -> int | None:
    usage = getattr(value, "usage", None)
    if usage is None and isinstance(value, Mapping):
        usage = value.get("usage")
    total = usage.get("total_tokens") if isinstance(usage, Mapping) else None
    if total is None:
        total = getattr(usage, "total_tokens", None)
    return total if isinstance(total, int) else None


def budgets_saturated(task: str, failures: Sequence[AttemptFailure]) -> BudgetWaitTooLongError:
    """Every provider of `task` refused on budget: one 429 whose Retry-After is the shortest
    expected wait among them."""
    waits = [f.error.retry_after_s for f in failures if f.error.retry_after_s is not None]
    parts = "; ".join(f"{f.provider} ({f.model}): {f.error.message}" for f in failures)
    return BudgetWaitTooLongError(
        f"every provider of task '{task}' is at its budget: {parts}",
        retry_after_s=min(waits) if waits else None,
    )


class QueueObserver(Protocol):
    """Told how deep a provider's budget queue is and how long a caller waited in it (the
    proxy's metrics)."""

    def observe_queue(
        self, provider: str, *, depth: int, waited_s: float | None = None
    ) -> None: ...


class BudgetGate:
    """Acquire, settle and penalize the budget of one attempt (see `proxy.resilience`)."""

    def __init__(
        self, budgets: Budgets, *, max_queue_wait_s: float, observer: QueueObserver | None = None
    ) -> None:
        self._budgets = budgets
        self._max_wait = max_queue_wait_s
        self._observer = observer
        self._log = structlog.get_logger("proxy.budgets")

    async def acquire(
        self,
        deployment: Deployment,
        task: str,
        user_id: str | None,
        demand: Demand,
        *,
        deadline: float | None,
        now: float,
    ) -> Grant | None:
        """A grant (None: no limit, or the store failed), having queued for it if need be;
        raises BudgetWaitTooLongError when it cannot come before the deadline (or
        `max_queue_wait_s` without one)."""
        until = deadline if deadline is not None else now + self._max_wait
        try:
            grant = await self._acquire(deployment, task, user_id, demand, until)
        except BudgetExhausted as exc:
            self._observe(deployment, task, None)
            raise BudgetWaitTooLongError(
                f"budget {exc.key}: expected wait {exc.expected_wait_s:.1f}s "
                + ("(its queue is full)" if exc.queue_full else "exceeds the deadline"),
                provider=deployment.provider,
                retry_after_s=exc.expected_wait_s,
            ) from exc
        except BudgetError as exc:
            self._log.warning(
                "budget_unavailable_call_unbudgeted",
                provider=deployment.provider,
                error=type(exc).__name__,
            )
            return None
        if grant is not None:
            self._observe(deployment, task, grant.waited_s)
            if grant.waited_s > 0:
                # The request's ledger: x-gateway-queue-ms on the answer.
                record_queue_wait(grant.waited_s)
        return grant

    async def _acquire(
        self,
        deployment: Deployment,
        task: str,
        user_id: str | None,
        demand: Demand,
        until: float,
    ) -> Grant | None:
        return await self._budgets.acquire(
            deployment.provider,
            deployment.model,
            task,
            user=user_id or "-",
            priority=demand.priority,
            tokens=demand.tokens,
            deadline=until,
        )

    def _observe(self, deployment: Deployment, task: str, waited_s: float | None) -> None:
        if self._observer is not None:
            depth = self._budgets.queued(deployment.provider, deployment.model, task)
            self._observer.observe_queue(deployment.provider, depth=depth, waited_s=waited_s)

    async def settle(self, grant: Grant | None, value: Any) -> None:
        """The attempt ended (`value` its answer, None on failure): lease back, tokens
        reconciled with the answer's usage when it has one."""
        if grant is not None:
            await self._budgets.release(grant, tokens_used=_tokens_used(value))

    async def penalize(
        self, deployment: Deployment, task: str, retry_after_s: float | None
    ) -> None:
        """The provider answered 429: its budget slows down (AIMD), for every process."""
        try:
            await self._budgets.penalize(
                deployment.provider, deployment.model, task, retry_after_s=retry_after_s
            )
        except BudgetError as exc:
            self._log.warning(
                "budget_penalize_failed", provider=deployment.provider, error=type(exc).__name__
            )
