"""Specifications of CloudEvents binary-mode headers and trace propagation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from schemas import (
    build_headers,
    child_traceparent,
    new_traceparent,
    parse_headers,
    trace_id_of,
)

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_headers_carry_the_required_attributes() -> None:
    """Built headers hold specversion 1.0, id, type, source, time and the JSON content type."""
    headers = dict(
        build_headers(event_id="e-1", event_type="completion.requested", source="urn:t", time=WHEN)
    )
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == b"e-1"
    assert headers["ce_type"] == b"completion.requested"
    assert headers["ce_source"] == b"urn:t"
    assert headers["ce_time"] == b"2026-01-02T03:04:05Z"
    assert headers["content-type"] == b"application/json"


def test_ce_time_is_utc_rfc3339_whatever_the_zone_of_the_event_time() -> None:
    """Times in other zones are converted to UTC; microseconds are kept."""
    plus_two = timezone(timedelta(hours=2))
    when = datetime(2026, 1, 2, 5, 4, 5, 7, tzinfo=plus_two)
    headers = dict(build_headers(event_id="e", event_type="t", source="s", time=when))
    assert headers["ce_time"] == b"2026-01-02T03:04:05.000007Z"


def test_generated_trace_and_span_ids_are_valid_and_distinct() -> None:
    """Every new traceparent is valid W3C, and span ids do not repeat."""
    parents = [new_traceparent() for _ in range(2000)]
    assert all(trace_id_of(p) is not None for p in parents)
    assert len({p.split("-")[1] for p in parents}) == 2000
    children = [child_traceparent(parents[0]) for _ in range(2000)]
    assert len({c.split("-")[2] for c in children}) == 2000


def test_headers_round_trip() -> None:
    """Parsing built headers gives back the same attributes and traceparent."""
    parent = new_traceparent()
    headers = build_headers(
        event_id="e-1",
        event_type="job.progress",
        source="urn:t",
        time=WHEN,
        subject="p-1",
        traceparent=parent,
    )
    parsed = parse_headers(headers)
    assert parsed is not None
    assert (parsed.id, parsed.type, parsed.source, parsed.time, parsed.subject) == (
        "e-1",
        "job.progress",
        "urn:t",
        WHEN,
        "p-1",
    )
    assert parsed.traceparent == parent


def test_a_traceparent_is_generated_when_absent() -> None:
    """Headers built without a traceparent get a valid new one."""
    headers = dict(build_headers(event_id="e", event_type="t", source="s"))
    assert trace_id_of(headers["traceparent"].decode()) is not None


def test_child_traceparent_keeps_the_trace_id() -> None:
    """A child span continues the parent's trace with a different span id."""
    parent = new_traceparent()
    child = child_traceparent(parent)
    assert trace_id_of(child) == trace_id_of(parent)
    assert child != parent


def test_invalid_traceparent_starts_a_new_trace() -> None:
    """A malformed or all-zero traceparent is ignored, per W3C trace context."""
    assert trace_id_of("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None
    assert trace_id_of("garbage") is None
    assert trace_id_of(child_traceparent("garbage")) is not None


def test_missing_required_headers_parse_to_none() -> None:
    """Records without CloudEvents headers are not CloudEvents."""
    assert parse_headers([("content-type", b"application/json")]) is None
