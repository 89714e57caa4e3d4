"""How media plugins' errors become the proxy's error tree: the one translation point.

Why it exists: plugins may not import the proxy (they run under stock LiteLLM too), so their
errors are read by two attributes every plugin error root carries, ``status_code`` and
``retriable`` (plus ``retry_after_s``, ``param`` and ``content_policy`` when set), and mapped
here; the retry policy then sees the same vocabulary as for chat completions (a refusal marked
``content_policy`` is a ContentPolicyError, which a task's content-policy fallback may serve).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.redact import Redactor
from proxy.errors import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    ExternalServiceError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    UnexpectedProviderError,
)

__all__ = ["MediaInvalidRequestError", "is_plugin_error", "plugin_error", "translated"]

_BY_STATUS: dict[int, type[ExternalServiceError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    504: ProviderTimeoutError,
}


class MediaInvalidRequestError(InvalidRequestError):
    """A media request the gateway refuses before any provider call, naming the parameter."""

    def __init__(self, message: str, *, param: str | None, provider: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.param = param

    def to_openai_body(self) -> dict[str, Any]:
        body = super().to_openai_body()
        body["error"]["param"] = self.param
        return body


def is_plugin_error(exc: BaseException) -> bool:
    return isinstance(getattr(exc, "status_code", None), int) and isinstance(
        getattr(exc, "retriable", None), bool
    )


def _kind(status: int, retriable: bool) -> type[ExternalServiceError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return BadRequestError
    # A 5xx that will not pass (a failed job, a broken answer): another provider may serve.
    return ProviderServerError if retriable else UnexpectedProviderError


def plugin_error(
    exc: BaseException, provider: str, redactor: Redactor, *, before_call: bool = False
) -> ExternalServiceError:
    """The proxy error for a plugin error; ``before_call`` marks request validation."""
    message = redactor.scrub(str(getattr(exc, "message", None) or exc))
    if before_call:
        return MediaInvalidRequestError(
            message, param=getattr(exc, "param", None), provider=provider
        )
    status: int = exc.status_code  # type: ignore[attr-defined]  # checked by is_plugin_error
    retriable: bool = exc.retriable  # type: ignore[attr-defined]
    kind: type[ExternalServiceError] = (
        ContentPolicyError
        if getattr(exc, "content_policy", False) is True
        else _kind(status, retriable)
    )
    return kind(
        f"{provider}: {message}",
        provider=provider,
        status_code=status if kind not in (UnexpectedProviderError, BadRequestError) else None,
        retry_after_s=getattr(exc, "retry_after_s", None),
    )


@contextmanager
def translated(provider: str, redactor: Redactor, *, before_call: bool = False) -> Iterator[None]:
    """Plugin errors raised inside the block leave it as the proxy's (see `plugin_error`);
    anything else passes through untouched."""
    try:
        yield
    except Exception as exc:
        if not is_plugin_error(exc):
            raise
        raise plugin_error(exc, provider, redactor, before_call=before_call) from exc
