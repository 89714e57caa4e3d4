"""The one place that decides whether and when a failed handler call is tried again.

Why one module: retry policy (attempt budget, exponential backoff with jitter, honouring a
429's Retry-After) must be the same for every handler, and nothing else in the runtime may
loop on failures by itself. Two limits come from outside the settings: the event's deadline
(no retry whose wait would end after it) and a handler's own delivery budget (the proxy handler
allows few, since the proxy retries and falls back itself; see `proxy_handler`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from consumers.errors import ProviderRateLimited
from consumers.settings import RetrySettings

__all__ = ["RetryDecision", "RetryPolicy", "is_retriable"]


def is_retriable(error: BaseException) -> bool:
    """Errors say whether they are retriable; unknown exceptions are not (a bug stays a bug)."""
    return bool(getattr(error, "retriable", False))


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay_s: float = 0.0
    # True when the failure was a 429: it uses the rate-limit budget, not an attempt.
    rate_limited: bool = False


class RetryPolicy:
    """Decides retry and delay from the error, the attempts made and the 429s seen."""

    def __init__(self, settings: RetrySettings, *, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._rng = rng or random.Random()

    @property
    def settings(self) -> RetrySettings:
        return self._settings

    def backoff(self, attempt: int) -> float:
        """Delay after the `attempt`-th failure (1-based), jittered by +/- `jitter`."""
        s = self._settings
        base = min(s.max_backoff_s, s.initial_backoff_s * s.multiplier ** max(0, attempt - 1))
        spread = base * s.jitter
        return max(0.0, base + self._rng.uniform(-spread, spread))

    def decide(
        self,
        error: BaseException,
        *,
        attempts: int,
        rate_limited: int,
        deliveries_left: int | None = None,
        time_left_s: float | None = None,
    ) -> RetryDecision:
        """`attempts`: failed attempts so far that counted; `rate_limited`: 429s so far;
        `deliveries_left`: further calls the handler allows (None: no limit of its own);
        `time_left_s`: seconds until the event's deadline (None: it has none)."""
        decision = self._decide(error, attempts=attempts, rate_limited=rate_limited)
        if not decision.retry:
            return decision
        out_of_deliveries = deliveries_left is not None and deliveries_left <= 0
        out_of_time = time_left_s is not None and decision.delay_s >= time_left_s
        if out_of_deliveries or out_of_time:
            return RetryDecision(retry=False, rate_limited=decision.rate_limited)
        return decision

    def _decide(self, error: BaseException, *, attempts: int, rate_limited: int) -> RetryDecision:
        s = self._settings
        if isinstance(error, ProviderRateLimited):
            if rate_limited >= s.max_rate_limited_retries:
                return RetryDecision(retry=False, rate_limited=True)
            after = error.retry_after_s
            delay = min(after, s.max_retry_after_s) if after is not None else self.backoff(1)
            return RetryDecision(retry=True, delay_s=delay, rate_limited=True)
        if not is_retriable(error) or attempts >= s.max_attempts:
            return RetryDecision(retry=False)
        return RetryDecision(retry=True, delay_s=self.backoff(attempts))
