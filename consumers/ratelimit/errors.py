"""Errors raised by ``consumers.ratelimit``.

Named ``RateLimiterError`` (not ``RateLimitError``) so it never shadows the provider-side
"429 seen" errors: these say that OUR queue could not hand out a token, not that a provider
refused a call. Redis client errors are translated in one place (``_redis._translate``).

    RateLimiterError                    retriable = False
    ├── RateLimitTimeout                retriable = True   (no token before the caller's deadline)
    ├── RateLimiterUnavailable          retriable = True   (Redis unreachable or timed out)
    ├── RateLimiterBackendError         retriable = False  (Redis answered with an error)
    └── RateLimiterNotStarted           retriable = False  (used before start() / after stop())
"""

from __future__ import annotations

from consumers.errors import ConsumerError

__all__ = [
    "RateLimitTimeout",
    "RateLimiterBackendError",
    "RateLimiterError",
    "RateLimiterNotStarted",
    "RateLimiterUnavailable",
]


class RateLimiterError(ConsumerError):
    """Root of every error raised by ``consumers.ratelimit`` (a branch of `consumers.errors`)."""

    retriable: bool = False


class RateLimitTimeout(RateLimiterError):
    """No token could be had for ``key`` within ``timeout_s``; try the work again later."""

    retriable = True

    def __init__(self, key: str, timeout_s: float, waited_s: float) -> None:
        super().__init__(
            f"no rate-limit token for {key!r} within {timeout_s:.3f}s (waited {waited_s:.3f}s)"
        )
        self.key = key
        self.timeout_s = timeout_s
        self.waited_s = waited_s


class RateLimiterUnavailable(RateLimiterError):
    """The shared limiter state could not be reached in time."""

    retriable = True


class RateLimiterBackendError(RateLimiterError):
    """Redis rejected the limiter's command (wrong key type, script error, auth)."""

    retriable = False


class RateLimiterNotStarted(RateLimiterError):
    """A limiter method was called outside its start()/stop() lifecycle."""

    retriable = False
