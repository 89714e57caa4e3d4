"""Specifications of the retry policy: retriable flags, budgets, backoff and Retry-After."""

from __future__ import annotations

import random

from consumers import ProviderBadRequest, ProviderRateLimited, ProviderUnavailable
from consumers.retry import RetryPolicy
from consumers.settings import RetrySettings

SETTINGS = RetrySettings(
    max_attempts=3,
    initial_backoff_s=1.0,
    max_backoff_s=3.0,
    multiplier=2.0,
    jitter=0.0,
    max_retry_after_s=10.0,
    max_rate_limited_retries=2,
)


def _policy() -> RetryPolicy:
    return RetryPolicy(SETTINGS, rng=random.Random(1))


def test_retriable_errors_retry_until_the_attempt_budget() -> None:
    """A 5xx is retried after attempts 1 and 2 and given up after attempt 3."""
    policy = _policy()
    error = ProviderUnavailable("503")
    assert [policy.decide(error, attempts=n, rate_limited=0).retry for n in (1, 2, 3)] == [
        True,
        True,
        False,
    ]


def test_non_retriable_errors_never_retry() -> None:
    """A 400 fails at once."""
    assert not _policy().decide(ProviderBadRequest("400"), attempts=1, rate_limited=0).retry


def test_unknown_exceptions_are_not_retried() -> None:
    """An exception without a retriable flag is treated as a bug, not retried."""
    assert not _policy().decide(ZeroDivisionError(), attempts=1, rate_limited=0).retry


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    """Delays double per attempt and stop at max_backoff_s."""
    policy = _policy()
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]


def test_rate_limited_honours_retry_after_with_its_own_budget() -> None:
    """A 429 waits its Retry-After (capped), does not use attempts, and has its own budget."""
    policy = _policy()
    first = policy.decide(ProviderRateLimited("429", retry_after_s=4), attempts=3, rate_limited=0)
    capped = policy.decide(ProviderRateLimited("429", retry_after_s=99), attempts=1, rate_limited=1)
    spent = policy.decide(ProviderRateLimited("429"), attempts=1, rate_limited=2)
    assert (first.retry, first.delay_s, first.rate_limited) == (True, 4, True)
    assert capped.delay_s == 10.0
    assert not spent.retry


def test_a_handlers_delivery_budget_ends_retries() -> None:
    """With no deliveries left a retriable error, 429s included, is final."""
    policy = _policy()
    spent = policy.decide(ProviderUnavailable("503"), attempts=1, rate_limited=0, deliveries_left=0)
    limited = policy.decide(
        ProviderRateLimited("429", retry_after_s=1), attempts=1, rate_limited=0, deliveries_left=0
    )
    left = policy.decide(ProviderUnavailable("503"), attempts=1, rate_limited=0, deliveries_left=1)
    assert (spent.retry, limited.retry, left.retry) == (False, False, True)


def test_no_retry_waits_past_the_deadline() -> None:
    """A retry whose wait (backoff or Retry-After) would end after the deadline is not made."""
    policy = _policy()
    late = policy.decide(
        ProviderRateLimited("429", retry_after_s=4), attempts=1, rate_limited=0, time_left_s=3
    )
    in_time = policy.decide(ProviderUnavailable("503"), attempts=1, rate_limited=0, time_left_s=3)
    assert not late.retry
    assert (in_time.retry, in_time.delay_s) == (True, 1.0)
