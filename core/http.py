"""The HTTP conventions the proxy and its callers share: Retry-After, deadlines, retriability.

Why in core: the proxy parses providers' Retry-After and the consumers parse the proxy's, the
consumers send a deadline the proxy enforces, and the proxy marks failures the consumers may
send again. Each convention is written once, here, so the two sides cannot drift; neither side
imports the other.

- `Retry-After` (delta seconds or an HTTP date) and `retry-after-ms` (OpenAI's, milliseconds):
  `retry_after_seconds`.
- `x-gateway-timeout-ms`: the caller's remaining budget in whole milliseconds. The proxy starts
  no attempt, retry or fallback after it and cancels the attempt in flight when it passes.
  Relative rather than an absolute time so that the caller's and the proxy's clocks need not
  agree; the caller computes it from its own deadline just before sending.
- `x-gateway-retriable`: on every error the proxy's fast path answers, `true` only when each
  provider of the task failed in a way that may pass (the whole chain failed retriably), so
  sending the request again later may succeed; otherwise `false`.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = [
    "PRIORITY_HEADER",
    "RETRIABLE_HEADER",
    "TIMEOUT_HEADER",
    "format_timeout",
    "parse_timeout",
    "retry_after_seconds",
    "seconds_until",
]

TIMEOUT_HEADER = "x-gateway-timeout-ms"
RETRIABLE_HEADER = "x-gateway-retriable"
# A caller's place in the proxy's budget queue: high, normal (the default) or low.
PRIORITY_HEADER = "x-gateway-priority"


def retry_after_seconds(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (delta seconds or an HTTP date);
    None when absent or unreadable. Header names are matched case-insensitively."""
    if not headers:
        return None
    millis: str | None = None
    value: str | None = None
    for name, raw in headers.items():
        lowered = name.lower()
        if lowered == "retry-after-ms":
            millis = raw
        elif lowered == "retry-after":
            value = raw
    if millis is not None:
        try:
            return _non_negative(float(millis) / 1000)
        except ValueError:
            pass
    if not value:
        return None
    try:
        return _non_negative(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _non_negative(seconds: float) -> float | None:
    return max(0.0, seconds) if math.isfinite(seconds) else None


def format_timeout(seconds: float) -> str:
    """The `x-gateway-timeout-ms` value for `seconds` left, rounded down (never more time than
    the caller has) and never negative."""
    return str(max(0, math.floor(seconds * 1000)))


def parse_timeout(value: str) -> float:
    """Seconds of budget in an `x-gateway-timeout-ms` value; ValueError when it is not a
    non-negative whole number of milliseconds."""
    stripped = value.strip()
    if not stripped.isdigit():
        raise ValueError(f"{TIMEOUT_HEADER} must be a non-negative integer, got {value!r}")
    return int(stripped) / 1000


def seconds_until(deadline: datetime, *, now: datetime | None = None) -> float:
    """Seconds from now until `deadline` (negative once it has passed); a naive `deadline`
    is read as UTC, the time zone of every event timestamp."""
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=UTC)
    return (deadline - (now or datetime.now(UTC))).total_seconds()
