"""Fault specifications: the small language tests use to make an emulator misbehave.

Why it exists: retry, fallback and timeout logic can only be tested against an upstream that
fails on demand, and the same failure must be requestable three ways (a header, a marker in the
prompt that survives the proxy, and the control API), so the grammar is parsed in one place.

Grammar (one spec; whitespace is ignored)::

    spec        := kind [":" option] ["x" count]
    kind        := "400" | "401" | "403" | "404" | "429" | "500" | "502" | "503" | "529"
                 | "hang" | "latency=" milliseconds
    option      := "retry-after=" seconds       (only meaningful for 429)
    count       := positive integer

Examples::

    429                 429 with ``Retry-After: 1``
    429:retry-after=2   429 with ``Retry-After: 2``; ``retry-after=0`` omits the header
    503                 the provider's overload error (Anthropic answers 529 overloaded_error)
    529                 Anthropic's own overload status; other emulators answer 503
    hang                never answer (sleeps ``hang_seconds``; cancelled on disconnect/stop)
    latency=250         wait 250 ms, then answer normally
    503x2               fail the first 2 requests carrying this spec and the same conversation,
                        then answer normally (so attempt 3 of a retried request succeeds);
                        the count ignores the model name, so a fallback to another model of
                        the same emulator continues the same count

Per request a spec comes from the ``x-emulator-fault`` header or from a ``[[fault:<spec>]]``
marker anywhere in the text of any message (system prompts and tool results included).
The control API (``POST /_emulator/faults``) sets a fault for the next N requests instead.
Precedence: control fault, then header, then marker; only one fault applies per request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from emulators.http.errors import FaultSpecError

__all__ = [
    "FAULT_HEADER",
    "FaultSpec",
    "FaultSpecError",
    "find_marker",
    "parse_fault",
]

FAULT_HEADER = "x-emulator-fault"

FaultKind = Literal["status", "hang", "latency"]

_STATUSES = frozenset({400, 401, 403, 404, 429, 500, 502, 503, 529})
_SPEC = re.compile(
    r"^(?P<kind>\d{3}|hang|latency=(?P<ms>\d+))"
    r"(?::retry-after=(?P<ra>\d+))?"
    r"(?:x(?P<count>\d+))?$"
)
_MARKER = re.compile(r"\[\[fault:([^\]]+)\]\]")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One parsed spec; ``text`` is the canonical source, used as part of counter keys."""

    text: str
    kind: FaultKind
    status: int = 0
    retry_after: int = 1
    latency_ms: int = 0
    count: int | None = None


def parse_fault(text: str) -> FaultSpec:
    """Parse ``text`` or raise FaultSpecError."""
    canonical = "".join(text.split()).lower()
    match = _SPEC.match(canonical)
    if match is None:
        raise FaultSpecError(f"invalid fault spec: {text!r}")
    kind = match["kind"]
    count = int(match["count"]) if match["count"] else None
    if count == 0:
        raise FaultSpecError(f"fault count must be positive: {text!r}")
    retry_after = int(match["ra"]) if match["ra"] is not None else 1
    if kind == "hang":
        return FaultSpec(text=canonical, kind="hang", count=count)
    if match["ms"] is not None:
        return FaultSpec(text=canonical, kind="latency", latency_ms=int(match["ms"]), count=count)
    status = int(kind)
    if status not in _STATUSES:
        raise FaultSpecError(f"unsupported fault status {status}: {text!r}")
    return FaultSpec(
        text=canonical, kind="status", status=status, retry_after=retry_after, count=count
    )


def find_marker(text: str) -> str | None:
    """Return the spec of the first ``[[fault:...]]`` marker in ``text``, if any."""
    match = _MARKER.search(text)
    return match.group(1) if match else None
