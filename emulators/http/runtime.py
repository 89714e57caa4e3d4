"""Settings and the live state of one emulator: keys, faults, rate limit and statistics.

Why it exists: faults, counters and the rate limiter must be shared by a provider's routes and
the control API, yet there must be no module-level state (several emulators run in one
process), so each app owns one ``EmulatorRuntime`` built from a frozen ``EmulatorSettings``.
All mutation happens on the server's event loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from emulators.http.faults import FaultSpec, find_marker, parse_fault

__all__ = ["EmulatorRuntime", "EmulatorSettings", "key_fingerprint"]

_TIMESTAMPS_KEPT = 1000


def key_fingerprint(key: str) -> str:
    """How statistics name a key: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    """Start-up configuration of one emulator; the control API can change it later."""

    # None accepts any non-empty key, like a permissive sandbox account.
    allowed_keys: frozenset[str] | None = None
    # A fault applied to every request (``fault_count`` of them, or all when None).
    fault: str | None = None
    fault_count: int | None = None
    rate_limit_rps: float | None = None
    rate_limit_burst: int | None = None
    hang_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.fault is not None:
            parse_fault(self.fault)


class EmulatorRuntime:
    """Mutable state behind one emulator app."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.stopping = asyncio.Event()
        self._apply_settings(settings)
        self._clear_stats()

    def _apply_settings(self, settings: EmulatorSettings) -> None:
        self.allowed_keys = settings.allowed_keys
        self.hang_seconds = settings.hang_seconds
        self._fault = parse_fault(settings.fault) if settings.fault else None
        self._fault_left = settings.fault_count
        self._marker_counts: dict[tuple[str, str], int] = {}
        self.set_rate_limit(settings.rate_limit_rps, settings.rate_limit_burst)

    def _clear_stats(self) -> None:
        self.requests = 0
        self.faults_served = 0
        self.by_path: Counter[str] = Counter()
        self.by_model: Counter[str] = Counter()
        # Which key each request carried, by fingerprint (`key_fingerprint`), never the key.
        self.by_key: Counter[str] = Counter()
        self.timestamps: deque[float] = deque(maxlen=_TIMESTAMPS_KEPT)
        # The W3C traceparent of the latest calls (tests follow a trace to the provider).
        self.traceparents: deque[str] = deque(maxlen=_TIMESTAMPS_KEPT)

    def reset(self) -> None:
        """Back to start-up settings with empty statistics."""
        self._apply_settings(self.settings)
        self._clear_stats()

    def begin_shutdown(self) -> None:
        """Release hanging requests so the server can stop promptly."""
        self.stopping.set()

    def end_shutdown(self) -> None:
        """Called before (re)starting a server: hang faults hang again."""
        self.stopping = asyncio.Event()

    # --- statistics -------------------------------------------------------------------------

    def record(self, path: str, model: str | None) -> None:
        self.requests += 1
        self.by_path[path] += 1
        if model:
            self.by_model[model] += 1
        self.timestamps.append(time.monotonic())

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_path": dict(self.by_path),
            "by_model": dict(self.by_model),
            "by_key": dict(self.by_key),
            "faults_served": self.faults_served,
            "timestamps": list(self.timestamps),
            "traceparents": list(self.traceparents),
        }

    # --- auth and rate limit ----------------------------------------------------------------

    def record_traceparent(self, traceparent: str | None) -> None:
        if traceparent:
            self.traceparents.append(traceparent)

    def record_key(self, key: str | None) -> None:
        """Count the key a generation request carried (once per request, in `guard`)."""
        if key:
            self.by_key[key_fingerprint(key)] += 1

    def key_allowed(self, key: str | None) -> bool:
        if not key:
            return False
        return self.allowed_keys is None or key in self.allowed_keys

    def set_rate_limit(self, rps: float | None, burst: int | None = None) -> None:
        self.rate_limit_rps = rps if rps and rps > 0 else None
        rate = self.rate_limit_rps or 1.0
        self._capacity = float(burst if burst else max(1, math.ceil(rate / 5)))
        self._tokens = self._capacity
        self._refilled = time.monotonic()

    def take_rate_token(self) -> int | None:
        """None when the request may pass, else the Retry-After seconds to send."""
        rps = self.rate_limit_rps
        if rps is None:
            return None
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._refilled) * rps)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - self._tokens) / rps))

    # --- faults -----------------------------------------------------------------------------

    def set_fault(self, spec: str, count: int | None) -> None:
        self._fault = parse_fault(spec)
        self._fault_left = count

    def clear_faults(self) -> None:
        self._fault = None
        self._fault_left = None
        self._marker_counts.clear()

    def select_fault(self, header: str | None, conversation_text: str) -> FaultSpec | None:
        """The fault this request must suffer, if any; raises FaultSpecError on bad specs."""
        if self._fault is not None:
            if self._fault_left is None:
                return self._fault
            if self._fault_left > 0:
                self._fault_left -= 1
                return self._fault
            self._fault = None
        for source in (header, find_marker(conversation_text)):
            if source:
                spec = parse_fault(source)
                if spec.count is None or self._counted(spec, conversation_text):
                    return spec
        return None

    def _counted(self, spec: FaultSpec, conversation_text: str) -> bool:
        # Keyed by conversation so that an identical retry is the same "request" for counting.
        key = (spec.text, hashlib.sha256(conversation_text.encode()).hexdigest())
        seen = self._marker_counts.get(key, 0)
        if spec.count is not None and seen >= spec.count:
            return False
        self._marker_counts[key] = seen + 1
        return True
