"""structlog set-up shared by the proxy, the consumers and the emulators.

Why one module: the rule "secrets never reach logs" must hold for every process, so redaction
is a processor installed once here rather than something each call site remembers to do.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import Any

import structlog

# Shapes of credentials we must never print even when nobody registered them: provider key
# prefixes, auth header values, and query-string keys (Gemini accepts ?key=...).
_SECRET_PATTERNS = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{6,}|sk-[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{20,}"
    r"|(?<=Bearer )[A-Za-z0-9._\-]{8,}|(?<=Key )[A-Za-z0-9:._\-]{8,}|(?<=[?&]key=)[^&\s\"']+)"
)
_SECRET_FIELD = re.compile(r"(api[_-]?key|authorization|secret|token|password|x-api-key)", re.I)
_MASK = "[REDACTED]"


class SecretRegistry:
    """Exact secret values known to this process (keys read from env or a key store).

    Values shorter than 6 characters are ignored: masking them would shred ordinary text.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        for value in values:
            self.add(value)

    def add(self, value: str | None) -> None:
        if value and len(value) >= 6:
            self._values.add(value)

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, _MASK)
        return _SECRET_PATTERNS.sub(_MASK, text)


def redact(value: Any, registry: SecretRegistry | None = None) -> Any:
    """Return `value` with every secret masked, recursing into dicts, lists and tuples."""
    reg = registry or _DEFAULT_REGISTRY
    if isinstance(value, str):
        return reg.scrub(value)
    if isinstance(value, dict):
        return {
            k: (_MASK if isinstance(k, str) and _SECRET_FIELD.search(k) and v else redact(v, reg))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v, reg) for v in value)
    return value


# The registry is process-wide by nature (one set of keys per process), but it only ever grows
# with values handed to it explicitly at start-up; it holds no request state.
_DEFAULT_REGISTRY = SecretRegistry()


def default_registry() -> SecretRegistry:
    return _DEFAULT_REGISTRY


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return {k: redact(v) if k != "event" else redact(str(v)) for k, v in event_dict.items()}


# Fields of the unit of work this context belongs to (an event: topic, partition, offset, id).
# Why not structlog's bind_contextvars: it sets one context variable per field and resets each
# again, for every event, whether or not anything is logged; here a unit of work costs one
# set and one reset, and the fields are only read when a line is actually logged.
_scope: ContextVar[Mapping[str, Any] | None] = ContextVar("log_scope", default=None)


def bind_log_scope(fields: Mapping[str, Any]) -> Token[Mapping[str, Any] | None]:
    """Add `fields` to every line logged in this context and in tasks created from it."""
    parent = _scope.get()
    return _scope.set(fields if parent is None else {**parent, **fields})


def reset_log_scope(token: Token[Mapping[str, Any] | None]) -> None:
    _scope.reset(token)


def merge_log_scope(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the bound scope's fields, under the line's own."""
    fields = _scope.get()
    if fields:
        for key, value in fields.items():
            event_dict.setdefault(key, value)
    return event_dict


def configure_logging(*, json: bool = True, level: str = "INFO") -> None:
    """Install the shared structlog pipeline; JSON in production, readable on a terminal."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        merge_log_scope,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
