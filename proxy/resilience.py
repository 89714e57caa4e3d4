"""Retries and fallbacks: the only module in the gateway that tries anything twice.

The retry seeds' policy is tenacity's `stop_after_attempt(3)`, `wait_exponential(multiplier=1,
max=10)` and a retry on timeouts, 429 and 5xx; here it is the same tenacity terms per provider,
plus an ordered list of providers, the providers' Retry-After and the caller's deadline:
- stop: after `attempts` tries of one provider (`stop_after_attempt`); when its Retry-After is
  above `max_retry_after_s` (the provider is out for a while: move on at once); when the wait
  would end at or after the caller's deadline.
- wait: the provider's Retry-After when it sent one, else `wait_exponential(multiplier=
  backoff_base_s, max=backoff_max_s)`: backoff_base_s * 2**(n-1) after failure n, capped.
- retry: errors whose class is `retriable` (timeouts, 429, 500, 502, 503, 529).
- next provider: after 401, 403, 404, a missing key, or a provider's retries stopping.
- returned at once, no retry, no fallback (`fallback_allowed = False`): 400, content-policy
  refusals, a wrong gateway key; another provider would refuse the same request. Except: a
  content-policy refusal on a task with content-policy fallbacks (`router_settings.
  content_policy_fallbacks`, LiteLLM's vocabulary) moves to those, in order, instead of the
  rest of the chain; a second refusal there is returned as it is.
- the deadline (`x-gateway-timeout-ms`, on the event loop's clock): each attempt's timeout is
  cut to it, and no attempt starts after it; a chain it cut short ends in
  `DeadlineExceededError`. Cancellation (the client went away) cancels the attempt in flight
  and propagates at once.
- when every provider failed, `AllProvidersFailedError` names each one with its attempts and
  last error, and says whether all of them failed retriably (the caller may come back).

Worst case per request (`chain_bound`): attempts x providers calls, and providers x (attempts x
request_timeout_s + (attempts - 1) x max(backoff_max_s, max_retry_after_s)) seconds unless the
deadline is sooner; a task's content-policy fallbacks count among its providers.

Streaming callers make their `call` return only after the first chunk has arrived, so a stream
is retried or moved only before anything has been sent to the client.

Provider budgets (`gateway_settings.budgets`, `proxy.budgeting`), once per attempt, for every
caller: before the call a grant is taken from the budget of the deployment's provider (model,
task), queueing up to the deadline (or `max_queue_wait_s`) when it is spent; a budget that
cannot serve before then is a `BudgetWaitTooLongError` at once, not retried, so the next
provider serves; that attempt makes no provider call and counts as none. After the call the
grant goes back (concurrency lease, TPM estimate reconciled with the answer's usage), and an
upstream 429 cuts the budget's rate (the provider's Retry-After, up to max_retry_after_s,
blocks it meanwhile). When every provider refused on budget, the request ends in one 429
whose Retry-After is the shortest expected wait; the time queued goes to the request's ledger
(`proxy.accounting`: x-gateway-queue-ms).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from core.redact import Redactor
from proxy.budgeting import BudgetGate, Demand, budgets_saturated
from proxy.errors import (
    AllProvidersFailedError,
    AttemptFailure,
    BudgetWaitTooLongError,
    ContentPolicyError,
    DeadlineExceededError,
    ExternalServiceError,
    RateLimitError,
)
from proxy.keys import KeyResolver
from proxy.routing import Deployment, TaskRoute
from proxy.settings import ResilienceSettings
from proxy.upstream import upstream_errors

__all__ = ["AttemptObserver", "ChainBound", "Outcome", "Resilience", "chain_bound"]

T = TypeVar("T")

Call = Callable[[Deployment, str], Awaitable[T]]
Sleep = Callable[[float], Awaitable[None]]


class AttemptObserver(Protocol):
    """Told of every provider attempt and every move to a fallback (metrics, traces, the
    request's ledger); it reports and never changes what the policy does."""

    def attempt(
        self, task: str, deployment: Deployment, number: int, *, retry: bool
    ) -> AbstractContextManager[object]:
        """Entered around the provider call itself; sees its exception, if any."""
        ...

    def fallback(self, task: str, left: Deployment, deployment: Deployment) -> None: ...


class _Unobserved:
    def attempt(
        self, task: str, deployment: Deployment, number: int, *, retry: bool
    ) -> AbstractContextManager[object]:
        return contextlib.nullcontext()

    def fallback(self, task: str, left: Deployment, deployment: Deployment) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ChainBound:
    """The most one request can cost: provider calls, and seconds without a deadline."""

    calls: int
    seconds: float


def chain_bound(settings: ResilienceSettings, providers: int) -> ChainBound:
    """The worst case of one request over `providers` providers, every one failing retriably."""
    longest_wait = max(settings.backoff_max_s, settings.max_retry_after_s)
    per_provider = (
        settings.attempts * settings.request_timeout_s + (settings.attempts - 1) * longest_wait
    )
    return ChainBound(calls=settings.attempts * providers, seconds=providers * per_provider)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """A served request: the value and who served it after how many attempts."""

    value: T
    deployment: Deployment
    attempts: int
    total_attempts: int
    fallback: bool


def _error_of(state: RetryCallState) -> BaseException | None:
    outcome = state.outcome
    return outcome.exception() if outcome is not None and outcome.failed else None


def _retry_after_of(state: RetryCallState) -> float | None:
    error = _error_of(state)
    return error.retry_after_s if isinstance(error, ExternalServiceError) else None


def _is_retriable(error: BaseException) -> bool:
    return isinstance(error, ExternalServiceError) and error.retriable


class _WaitRetryAfter(wait_base):
    """The provider's Retry-After when it sent one, else the exponential backoff."""

    def __init__(self, backoff: wait_base) -> None:
        self._backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        after = _retry_after_of(retry_state)
        return after if after is not None else self._backoff(retry_state)


class _StopRetryAfterAbove(stop_base):
    """Stop when the provider asks for a longer pause than we are willing to hold a request."""

    def __init__(self, limit_s: float) -> None:
        self._limit = limit_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        after = _retry_after_of(retry_state)
        return after is not None and after > self._limit


class _StopAtDeadline(stop_base):
    """Stop when the next attempt could only start at or after the deadline; remembers that it
    did, so the chain reports the deadline rather than the provider's last error."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._clock = clock
        self.fired = False

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self._clock() + (retry_state.upcoming_sleep or 0.0) >= self._deadline:
            self.fired = True
        return self.fired


class _Chain(Generic[T]):
    """The state of one request's run through its route: attempts, failures, the deadline."""

    def __init__(self, route: TaskRoute, deadline: float | None, demand: Demand) -> None:
        self.route = route
        self.deadline = deadline
        self.demand = demand
        self.clock = asyncio.get_running_loop().time
        self.failures: list[AttemptFailure] = []
        self.total = 0
        # Attempts of the provider being tried (a second one is a retry).
        self.tries = 0
        self.cut_by_deadline = False

    def passed(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def give_up(self) -> ExternalServiceError:
        if self.cut_by_deadline or self.passed():
            return DeadlineExceededError(self.route.task, self.failures)
        if self.failures and all(
            isinstance(f.error, BudgetWaitTooLongError) for f in self.failures
        ):
            return budgets_saturated(self.route.task, self.failures)
        return AllProvidersFailedError(self.route.task, self.failures)


class Resilience:
    """Runs one request through a task's ordered providers under the policy above."""

    def __init__(
        self,
        settings: ResilienceSettings,
        keys: KeyResolver,
        *,
        redactor: Redactor | None = None,
        sleep: Sleep = asyncio.sleep,
        observer: AttemptObserver | None = None,
        budgets: BudgetGate | None = None,
    ) -> None:
        self._settings = settings
        self._budgets = budgets
        self._observer: AttemptObserver = observer if observer is not None else _Unobserved()
        self._keys = keys
        self._redactor = redactor if redactor is not None else Redactor()
        self._sleep = sleep
        self._backoff = wait_exponential(
            multiplier=settings.backoff_base_s, max=settings.backoff_max_s
        )

    def _retrying(self, chain: _Chain[T]) -> tuple[AsyncRetrying, _StopAtDeadline | None]:
        s = self._settings
        stop: stop_base = stop_after_attempt(s.attempts) | _StopRetryAfterAbove(s.max_retry_after_s)
        at_deadline = None
        if chain.deadline is not None:
            # Last, so that it only counts as the reason when nothing else stopped the retries.
            at_deadline = _StopAtDeadline(chain.deadline, chain.clock)
            stop = stop | at_deadline
        retrying = AsyncRetrying(
            stop=stop,
            wait=_WaitRetryAfter(self._backoff),
            retry=retry_if_exception(_is_retriable),
            sleep=self._sleep,
            reraise=True,
        )
        return retrying, at_deadline

    async def _attempt(
        self, chain: _Chain[T], deployment: Deployment, user_id: str | None, call: Call[T]
    ) -> T:
        gate = self._budgets
        if gate is None:
            return await self._call(chain, deployment, user_id, call)
        task = chain.route.task
        grant = await gate.acquire(
            deployment, task, user_id, chain.demand, deadline=chain.deadline, now=chain.clock()
        )
        value: T | None = None
        try:
            value = await self._call(chain, deployment, user_id, call)
            return value
        except RateLimitError as error:
            # Beyond max_retry_after_s the policy counts the provider as out and moves on; the
            # budget blocks it no longer than that either, so one 429 on one caller's key
            # cannot keep the provider from everyone for long.
            after = error.retry_after_s
            limit = self._settings.max_retry_after_s
            await gate.penalize(deployment, task, None if after is None else min(after, limit))
            raise
        finally:
            await gate.settle(grant, value)

    async def _call(
        self, chain: _Chain[T], deployment: Deployment, user_id: str | None, call: Call[T]
    ) -> T:
        chain.total += 1
        chain.tries += 1
        s = self._settings
        try:
            with upstream_errors(deployment.provider, self._redactor):
                key = await self._keys.resolve(deployment, user_id)
                ends = chain.clock() + s.request_timeout_s
                if chain.deadline is not None:
                    ends = min(ends, chain.deadline)
                task, retry = chain.route.task, chain.tries > 1
                with self._observer.attempt(task, deployment, chain.total, retry=retry):
                    async with asyncio.timeout_at(ends):
                        return await call(deployment, key)
        except ExternalServiceError as error:
            # Looked up per failure (never on success) so the current logging config applies.
            structlog.get_logger("proxy.resilience").warning(
                "provider_attempt_failed",
                task=chain.route.task,
                provider=deployment.provider,
                model=deployment.model,
                attempt=chain.total,
                status=error.status_code,
                error_type=type(error).__name__,
                error=error.message,
            )
            raise

    async def run(
        self,
        route: TaskRoute,
        user_id: str | None,
        call: Call[T],
        *,
        deadline: float | None = None,
        demand: Demand | None = None,
    ) -> Outcome[T]:
        """The first answer along `route`; `deadline` is on the running loop's clock; `demand`
        what each attempt asks of its provider's budget."""
        chain: _Chain[T] = _Chain(route, deadline, demand if demand is not None else Demand())
        queue = list(route.deployments)
        refused = False
        index = 0
        left: Deployment | None = None
        while index < len(queue):
            deployment = queue[index]
            index += 1
            if chain.passed():
                break
            if left is not None:
                self._observer.fallback(route.task, left, deployment)
            chain.tries = 0
            retrying, at_deadline = self._retrying(chain)
            before = chain.total
            try:
                value: T = await retrying(self._attempt, chain, deployment, user_id, call)
            except ExternalServiceError as error:
                attempts = chain.total - before
                if not error.fallback_allowed:
                    if not (
                        isinstance(error, ContentPolicyError)
                        and route.content_policy_deployments
                        and not refused
                    ):
                        raise
                    # The task's content-policy fallbacks serve instead of the rest of the
                    # chain, once: a refusal there is returned as it is.
                    refused = True
                    queue, index = list(route.content_policy_deployments), 0
                chain.failures.append(
                    AttemptFailure(deployment.provider, deployment.model, attempts, error)
                )
                left = deployment
                # A fallback starts at once, so one may still fit before the deadline (checked
                # above); the chain is reported as cut short by it all the same.
                if at_deadline is not None and at_deadline.fired:
                    chain.cut_by_deadline = True
                continue
            attempts = chain.total - before
            fallback = refused or deployment is not route.deployments[0]
            return Outcome(value, deployment, attempts, chain.total, fallback=fallback)
        raise chain.give_up()
