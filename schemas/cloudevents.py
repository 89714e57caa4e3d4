"""CloudEvents 1.0 binary-mode headers and W3C trace context for Kafka records.

Why binary mode: the JSON body stays the plain event (readable by any tool, validated by the JSON
Schema), while routers and tracing read the `ce_*` headers without decoding the body. The trace id
travels from a request to its result and status events, so one trace spans the whole job.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

__all__ = [
    "CONTENT_TYPE",
    "SPEC_VERSION",
    "CloudEventHeaders",
    "HeaderList",
    "build_headers",
    "child_traceparent",
    "new_traceparent",
    "parse_headers",
    "trace_id_of",
]

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

HeaderList = list[tuple[str, bytes]]

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class CloudEventHeaders(msgspec.Struct, frozen=True, kw_only=True):
    """The CloudEvents attributes and trace context read from (or written to) Kafka headers."""

    id: str
    type: str
    source: str
    time: datetime
    specversion: str = SPEC_VERSION
    content_type: str = CONTENT_TYPE
    subject: str | None = None
    traceparent: str | None = None


# Ids come from `random`, as OpenTelemetry's SDK draws them: W3C asks for unique, not
# unpredictable, ids, and an os.urandom call per event costs more than the rest of the
# header. The module's generator is reseeded in forked children, so processes never repeat.
def _span_id() -> str:
    return "%016x" % (random.getrandbits(64) or 1)  # 0 is invalid


def _trace_id() -> str:
    return "%032x" % (random.getrandbits(128) or 1)  # 0 is invalid


def new_traceparent() -> str:
    """A fresh sampled W3C traceparent (new trace id and span id)."""
    return f"00-{_trace_id()}-{_span_id()}-01"


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a valid traceparent, else None (invalid ones are ignored, per W3C)."""
    if traceparent is None:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match.group(1) == _ZERO_TRACE or match.group(2) == _ZERO_SPAN:
        return None
    return match.group(1)


def child_traceparent(parent: str | None) -> str:
    """A traceparent continuing `parent`'s trace with a new span; a new trace if it is invalid."""
    trace_id = trace_id_of(parent)
    if trace_id is None:
        return new_traceparent()
    return f"00-{trace_id}-{_span_id()}-01"


_SPEC_VERSION_BYTES = SPEC_VERSION.encode()
_CONTENT_TYPE_BYTES = CONTENT_TYPE.encode()
_encode_json = msgspec.json.Encoder().encode


def build_headers(
    *,
    event_id: str,
    event_type: str,
    source: str,
    time: datetime | None = None,
    subject: str | None = None,
    traceparent: str | None = None,
) -> HeaderList:
    """Kafka headers for one event; a traceparent is generated when none is given."""
    when = time or datetime.now(UTC)
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    headers: HeaderList = [
        ("ce_specversion", _SPEC_VERSION_BYTES),
        ("ce_id", event_id.encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", source.encode()),
        # msgspec writes a UTC datetime as RFC 3339 with a "Z", in C; minus the JSON quotes.
        ("ce_time", _encode_json(when)[1:-1]),
        ("content-type", _CONTENT_TYPE_BYTES),
        ("traceparent", (traceparent or new_traceparent()).encode()),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    return headers


def parse_headers(headers: Sequence[tuple[str, bytes | None]]) -> CloudEventHeaders | None:
    """Read CloudEvents attributes from Kafka headers; None when required ones are missing.

    Undecodable header bytes are treated as absent: headers are advisory, the body is the event.
    """
    values: dict[str, str] = {}
    for key, raw in headers:
        if raw is None:
            continue
        try:
            values[key] = raw.decode()
        except UnicodeDecodeError:
            continue
    try:
        event_id = values["ce_id"]
        event_type = values["ce_type"]
        source = values["ce_source"]
        time = datetime.fromisoformat(values["ce_time"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return CloudEventHeaders(
        id=event_id,
        type=event_type,
        source=source,
        time=time,
        specversion=values.get("ce_specversion", SPEC_VERSION),
        content_type=values.get("content-type", CONTENT_TYPE),
        subject=values.get("ce_subject"),
        traceparent=values.get("traceparent") if trace_id_of(values.get("traceparent")) else None,
    )
