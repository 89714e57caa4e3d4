"""Retries and fallbacks: the only module in the gateway that tries anything twice.

Policy (from the retry seeds, made explicit):
- Per provider at most `attempts` tries. Timeouts, 429, 500, 502, 503 and 529 are retried with
  exponential backoff (`backoff_base_s * 2**(n-1)`, capped at `backoff_max_s`), except that a
  provider's Retry-After is honoured instead; a Retry-After above `max_retry_after_s` means the
  provider is out for a while, so we move on to the next provider at once.
- 401, 403 and 404 (and a missing key) mean this provider cannot serve: no retry, next provider.
- 400 and content-policy refusals are about the client's request: returned at once, no retry,
  no fallback (another provider would refuse the same request or answer something different).
- When every provider failed, `AllProvidersFailedError` names each one with its attempts and
  last error.
Streaming callers make their `call` return only after the first chunk has arrived, so a stream
is retried or moved only before anything has been sent to the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from core.logging import SecretRegistry
from proxy.errors import AllProvidersFailedError, AttemptFailure, ExternalServiceError
from proxy.keys import KeyResolver
from proxy.routing import Deployment, TaskRoute
from proxy.settings import ResilienceSettings
from proxy.upstream import upstream_errors

__all__ = ["Outcome", "Resilience", "backoff_delay"]

T = TypeVar("T")

Call = Callable[[Deployment, str], Awaitable[T]]


def backoff_delay(
    retry_number: int, settings: ResilienceSettings, retry_after_s: float | None = None
) -> float | None:
    """Seconds to wait before retry `retry_number` (1-based), or None to stop retrying."""
    if retry_after_s is not None:
        return None if retry_after_s > settings.max_retry_after_s else retry_after_s
    return float(min(settings.backoff_max_s, settings.backoff_base_s * 2 ** (retry_number - 1)))


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """A served request: the value and who served it after how many attempts."""

    value: T
    deployment: Deployment
    attempts: int
    total_attempts: int
    fallback: bool


class Resilience:
    """Runs one request through a task's ordered providers under the policy above."""

    def __init__(
        self,
        settings: ResilienceSettings,
        keys: KeyResolver,
        *,
        registry: SecretRegistry | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._registry = registry
        self._sleep = sleep

    async def _attempt(self, deployment: Deployment, user_id: str | None, call: Call[T]) -> T:
        with upstream_errors(deployment.provider, self._registry):
            key = await self._keys.resolve(deployment, user_id)
            async with asyncio.timeout(self._settings.request_timeout_s):
                return await call(deployment, key)

    async def run(self, route: TaskRoute, user_id: str | None, call: Call[T]) -> Outcome[T]:
        failures: list[AttemptFailure] = []
        total = 0
        for index, deployment in enumerate(route.deployments):
            attempt = 0
            while True:
                attempt += 1
                total += 1
                try:
                    value = await self._attempt(deployment, user_id, call)
                except ExternalServiceError as error:
                    # Looked up per event (failures only) so the current logging config applies.
                    structlog.get_logger("proxy.resilience").warning(
                        "provider_attempt_failed",
                        task=route.task,
                        provider=deployment.provider,
                        model=deployment.model,
                        attempt=attempt,
                        status=error.status_code,
                        error_type=type(error).__name__,
                        error=error.message,
                    )
                    if not error.fallback_allowed:
                        raise
                    delay = (
                        backoff_delay(attempt, self._settings, error.retry_after_s)
                        if error.retriable and attempt < self._settings.attempts
                        else None
                    )
                    if delay is None:
                        failures.append(
                            AttemptFailure(deployment.provider, deployment.model, attempt, error)
                        )
                        break
                    await self._sleep(delay)
                    continue
                return Outcome(value, deployment, attempt, total, fallback=index > 0)
        raise AllProvidersFailedError(route.task, failures)
