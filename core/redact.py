"""One redactor per process: every secret it has seen, masked in everything that leaves.

Why it exists: secrets arrive from many places (the master key and provider keys read at
start-up, user keys read from the key store per request, the consumers' proxy key) and leave
through many doors (HTTP error bodies, published events, log lines). Every door asks the same
`Redactor`, built by whoever composes the process and handed down, so a key learnt at one door is
masked at all of them. There is no module-level instance: two stacks in one process (tests) never
share or leak each other's secrets, and a component given none builds its own.

What is masked:
- every value passed to `add` (at least 6 characters: shorter ones would shred ordinary text),
  wherever it appears;
- credential shapes nobody registered: provider key prefixes (`sk-ant-`, `sk-`, `AIza`) in text
  and bytes, and in text also the value after `Bearer `, `Key ` and a `key=` query parameter;
- in structured log fields, the whole value of a field named like a credential.

Published events (bytes) get the exact secrets and the key prefixes only: the contextual shapes
would also mask ordinary prose of a model's answer ("Key takeaways ...").
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = ["MASK", "Redactor"]

MASK = "[REDACTED]"
_MASK_BYTES = MASK.encode()
_MIN_LENGTH = 6

# \b keeps words such as "desk-organizer-with-drawers" intact.
_KEY_SHAPES = r"\b(?:sk-ant-[A-Za-z0-9_\-]{6,}|sk-[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{20,})"
_CONTEXT_SHAPES = (
    r"(?<=Bearer )[A-Za-z0-9._\-]{8,}|(?<=Key )[A-Za-z0-9:._\-]{8,}|(?<=[?&]key=)[^&\s\"']+"
)
_TEXT_SHAPES = re.compile(f"{_KEY_SHAPES}|{_CONTEXT_SHAPES}")
_BYTES_SHAPES = re.compile(_KEY_SHAPES.encode())
# Cheap substring tests that rule the byte regex out for almost every event.
_BYTES_HINTS = (b"sk-", b"AIza")
_SECRET_FIELD = re.compile(r"(api[_-]?key|authorization|secret|token|password|x-api-key)", re.I)


class Redactor:
    """The secrets one process has seen, and the masking of them in text, bytes and logs.

    Thread-safe: `add` swaps in a new tuple under a lock, readers use whichever tuple they got.
    """

    __slots__ = ("_known", "_lock", "_secrets", "_secrets_bytes")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._secrets: tuple[str, ...] = ()
        self._secrets_bytes: tuple[bytes, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Remember `secret` (None, empty and too-short values are ignored)."""
        if not secret or len(secret) < _MIN_LENGTH or secret in self._known:
            return
        with self._lock:
            if secret in self._known:
                return
            self._known.add(secret)
            # Longest first: a secret containing another one is masked whole.
            ordered = tuple(sorted(self._known, key=len, reverse=True))
            self._secrets_bytes = tuple(s.encode() for s in ordered)
            self._secrets = ordered

    def __len__(self) -> int:
        return len(self._secrets)

    def scrub(self, text: str) -> str:
        """`text` with every known secret and every credential shape masked."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _TEXT_SHAPES.sub(MASK, text)

    def scrub_bytes(self, data: bytes) -> bytes:
        """`data` (an encoded event) with every known secret and provider key shape masked.

        Unchanged bytes are returned as they are: the common case costs a few substring scans.
        """
        for secret in self._secrets_bytes:
            if secret in data:
                data = data.replace(secret, _MASK_BYTES)
        if any(hint in data for hint in _BYTES_HINTS):
            data = _BYTES_SHAPES.sub(_MASK_BYTES, data)
        return data

    def scrub_value(self, value: Any) -> Any:
        """`value` with secrets masked, recursing into dicts, lists and tuples; the value of a
        field named like a credential is masked whole."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {
                k: MASK
                if isinstance(k, str) and v and _SECRET_FIELD.search(k)
                else self.scrub_value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.scrub_value(v) for v in value)
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        return value

    def log_processor(
        self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor: every field of the line scrubbed (the event name as text)."""
        return {
            k: self.scrub(str(v)) if k == "event" else self.scrub_value(v)
            for k, v in event_dict.items()
        }
