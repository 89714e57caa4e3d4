"""Errors of the consumer runtime and of its handlers.

Why one tree: the runtime decides retry / dead-letter / final failure from `retriable` alone,
so handlers (and the proxy client's HTTP errors, translated once in `proxy_handler`) raise these.

    ConsumerError                       retriable = False
    ├── EventRejected                   retriable = False  (undecodable, oversized, unknown type)
    ├── NoHandler                       retriable = False  (no handler registered for the task)
    └── HandlerError                    retriable = False
        ├── ProviderBadRequest          retriable = False  (HTTP 400 / 422)
        ├── ProviderAuthError           retriable = False  (HTTP 401 / 403)
        ├── ProviderNotFound            retriable = False  (HTTP 404: unknown task / model)
        ├── ProviderRateLimited         retriable = True   (HTTP 429, optional retry_after_s)
        ├── ProviderUnavailable         retriable = True   (HTTP 5xx, connection errors)
        └── ProviderTimeout             retriable = True   (no answer in time)
"""

from __future__ import annotations

__all__ = [
    "ConsumerError",
    "EventRejected",
    "HandlerError",
    "NoHandler",
    "ProviderAuthError",
    "ProviderBadRequest",
    "ProviderNotFound",
    "ProviderRateLimited",
    "ProviderTimeout",
    "ProviderUnavailable",
]


class ConsumerError(Exception):
    """Root of every error raised by `consumers`."""

    retriable: bool = False


class EventRejected(ConsumerError):
    """The record cannot become an event: it goes to the dead-letter topic at once.

    `reason` is a short machine-readable code: malformed, unknown_type, oversized, invalid.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class NoHandler(ConsumerError):
    """No handler is registered for the event's type or task."""


class HandlerError(ConsumerError):
    """A handler could not produce a result; subclasses say whether trying again may help."""


class ProviderBadRequest(HandlerError):
    """The proxy rejected the request as invalid; retrying sends the same bad request."""


class ProviderAuthError(HandlerError):
    """The proxy refused our credentials."""


class ProviderNotFound(HandlerError):
    """The proxy does not know the task (model) or route."""


class ProviderRateLimited(HandlerError):
    """The proxy answered 429; `retry_after_s` is its Retry-After when it sent one."""

    retriable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProviderUnavailable(HandlerError):
    """The proxy or the provider behind it failed (5xx) or could not be reached."""

    retriable = True


class ProviderTimeout(HandlerError):
    """No answer within the configured timeout."""

    retriable = True
