"""structlog set-up shared by the proxy, the consumers and the emulators.

Why one module: the rule "secrets never reach logs" must hold for every process, so redaction
is a processor installed once here (the process's `core.redact.Redactor`, the same instance that
scrubs its HTTP errors and events) rather than something each call site remembers to do.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import Any

import structlog

from core.redact import Redactor

__all__ = [
    "bind_log_scope",
    "configure_logging",
    "merge_log_scope",
    "reset_log_scope",
]


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


def configure_logging(
    *, json: bool = True, level: str = "INFO", redactor: Redactor | None = None
) -> None:
    """Install the shared structlog pipeline; JSON in production, readable on a terminal.

    `redactor`: the process's redactor, so every key it learns later (a user key read from the
    key store, say) is masked in log lines too; without one, a new one that masks credential
    shapes only.
    """
    scrub = (redactor if redactor is not None else Redactor()).log_processor
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        merge_log_scope,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        # Last before rendering: every field, exception text included, is scrubbed.
        scrub,
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
