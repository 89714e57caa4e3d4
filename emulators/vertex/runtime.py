"""The Vertex emulator's live state: the shared runtime plus tokens, recorded calls, forced
block markers and the projects the caller may use.

Why it exists: gateway tests run the emulator in another process and must be able to assert
what each request carried (the safety settings from the config, the image config, the input
images) and to force refusals on requests whose text they do not control (a try-on carries
no prompt), all over the control API; the shared ``EmulatorRuntime`` keeps faults, the rate
limit and the generic counters.

Authentication: a request passes with a token minted by ``/token`` and not yet expired, or
with one of the runtime's ``allowed_keys`` (``EmulatorSettings.allowed_keys``, ``--api-key``,
``POST /_emulator/config {"allowed_keys": [...]}``), which here are fixed static bearer tokens
for simple clients (``google.oauth2.credentials.Credentials(token=...)``, curl). Unlike the
other emulators, no key at all is accepted by default: Vertex always needs a credential.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from emulators.http.runtime import EmulatorRuntime, EmulatorSettings
from emulators.vertex.tokens import TokenStore

__all__ = ["VertexRuntime"]

_CALLS_KEPT = 1000


@dataclass(slots=True)
class _Forced:
    marker: str
    left: int | None  # None: every request until cleared


class VertexRuntime(EmulatorRuntime):
    """``EmulatorRuntime`` plus the token store and the per-request records."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.tokens = TokenStore()
        self.calls: deque[dict[str, Any]] = deque(maxlen=_CALLS_KEPT)
        self._forced: _Forced | None = None
        # None: every project is allowed; else other projects get 403 PERMISSION_DENIED.
        self.allowed_projects: frozenset[str] | None = None
        self.unauthenticated = 0
        super().__init__(settings)

    def reset(self) -> None:
        super().reset()
        self.tokens.reset()
        self.calls.clear()
        self._forced = None
        self.allowed_projects = None
        self.unauthenticated = 0

    def key_allowed(self, key: str | None) -> bool:
        if not key:
            return False
        return (self.allowed_keys is not None and key in self.allowed_keys) or self.tokens.valid(
            key
        )

    def force_marker(self, marker: str, count: int | None) -> None:
        """The next ``count`` model calls (all, when None) act as if their text held ``marker``."""
        self._forced = _Forced(marker, count)

    def clear_forced(self) -> None:
        self._forced = None

    def take_forced(self) -> str:
        """The forced marker this call gets ('' when none), counting it down."""
        forced = self._forced
        if forced is None:
            return ""
        if forced.left is not None:
            forced.left -= 1
            if forced.left <= 0:
                self._forced = None
        return forced.marker

    def stats(self) -> dict[str, Any]:
        """The shared statistics plus ``calls`` (one record per model call, oldest first),
        ``tokens_minted``, ``token_refusals`` and ``unauthenticated`` (401s served)."""
        return {
            **super().stats(),
            "calls": list(self.calls),
            "tokens_minted": self.tokens.minted,
            "token_refusals": self.tokens.refused,
            "unauthenticated": self.unauthenticated,
        }
