"""Specifications of the HTTP conventions shared by the proxy and its callers."""

import email.utils
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core.http import format_timeout, parse_timeout, retry_after_seconds, seconds_until


def test_retry_after_reads_seconds_milliseconds_and_absence() -> None:
    """Retry-After seconds, retry-after-ms (which wins) and absent headers parse as expected."""
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({}) is None
    assert retry_after_seconds(None) is None


def test_retry_after_reads_an_http_date() -> None:
    """An HTTP-date Retry-After is the seconds from now until that date."""
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=now) == 30.0


def test_retry_after_ignores_garbage_and_clamps_the_past() -> None:
    """An unreadable value is None; a negative delay or a past date is 0."""
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({"retry-after": "-3"}) == 0.0
    assert retry_after_seconds({"retry-after": "Mon, 01 Jan 2001 00:00:00 GMT"}) == 0.0


def test_retry_after_reads_httpx_headers_case_insensitively() -> None:
    """The consumers pass httpx.Headers; the proxy passes providers' plain dicts."""
    assert retry_after_seconds(httpx.Headers({"RETRY-AFTER": "4"})) == 4.0


def test_timeout_header_rounds_down_and_round_trips() -> None:
    """A budget is sent in whole milliseconds, never more than the caller has."""
    assert format_timeout(1.2345) == "1234"
    assert format_timeout(-5) == "0"
    assert parse_timeout(format_timeout(2.5)) == 2.5


@pytest.mark.parametrize("value", ["", "abc", "-1", "1.5", "1e3"])
def test_timeout_header_rejects_anything_but_whole_milliseconds(value: str) -> None:
    """A malformed budget is an error, not a silently ignored deadline."""
    with pytest.raises(ValueError, match="x-gateway-timeout-ms"):
        parse_timeout(value)


def test_seconds_until_reads_naive_deadlines_as_utc() -> None:
    """A deadline without a time zone is UTC, like every event timestamp."""
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    naive = datetime(2030, 1, 1, 12, 0, 30)
    assert seconds_until(naive, now=now) == 30.0
    assert seconds_until(now - timedelta(seconds=5), now=now) == -5.0
