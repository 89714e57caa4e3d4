"""The one place where upstream exceptions become `proxy.errors` exceptions.

Why it exists: LiteLLM raises its own exception classes (mostly subclasses of the openai SDK's),
httpx raises transport errors and asyncio raises timeouts. The retry policy must see one
vocabulary, and provider error messages (which sometimes echo request details) must be scrubbed
of secrets before they can reach a log line or a client.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx
import litellm.exceptions as llm_exc
import openai

from core.http import retry_after_seconds
from core.redact import Redactor
from proxy.errors import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    ExternalServiceError,
    NotFoundError,
    PermissionDeniedError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    UnexpectedProviderError,
)

__all__ = ["translate", "upstream_errors"]

_MAX_MESSAGE = 500
# Gemini's error bodies carry the HTTP status as `"code": 502`; LiteLLM reports several of them
# as a generic 500 or a connection error, so the body is the only place the real status survives.
_BODY_5XX = re.compile(r'"code":\s*(5\d\d)\b')


def _headers_of(exc: BaseException) -> Mapping[str, str] | None:
    # LiteLLM keeps the provider's headers on `litellm_response_headers`; its `response` is
    # often a synthetic one without them.
    response = getattr(exc, "response", None)
    candidates = (
        getattr(exc, "litellm_response_headers", None),
        getattr(exc, "headers", None),
        response.headers if isinstance(response, httpx.Response) else None,
    )
    for value in candidates:
        if isinstance(value, Mapping | httpx.Headers) and value:
            return value
    return None


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    if isinstance(response, httpx.Response):
        return response.status_code
    return None


_BY_STATUS: dict[int, type[ExternalServiceError]] = {
    429: RateLimitError,
    401: AuthenticationError,
    402: PermissionDeniedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: ProviderTimeoutError,
    503: ServiceUnavailableError,
}


# Classes whose meaning does not depend on the status they carry (LiteLLM's classes subclass
# these openai SDK classes). Checked in order, before the status.
_BY_CLASS: tuple[tuple[type[BaseException], type[ExternalServiceError]], ...] = (
    (openai.RateLimitError, RateLimitError),
    (openai.AuthenticationError, AuthenticationError),
    (openai.PermissionDeniedError, PermissionDeniedError),
    (openai.NotFoundError, NotFoundError),
    (openai.BadRequestError, BadRequestError),
    (openai.UnprocessableEntityError, BadRequestError),
)


def _by_class(exc: BaseException) -> type[ExternalServiceError] | None:
    for upstream, ours in _BY_CLASS:
        if isinstance(exc, upstream):
            return ours
    return None


def _by_status(status: int) -> type[ExternalServiceError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ProviderServerError
    return BadRequestError if 400 <= status < 500 else UnexpectedProviderError


def _classify(  # noqa: PLR0911 - one return per upstream category reads best
    exc: BaseException, status: int | None
) -> tuple[type[ExternalServiceError], int | None]:
    """The error class for `exc` and the status worth keeping (None: the class default)."""
    # Order matters: timeouts and content-policy errors are subclasses of broader classes.
    if isinstance(
        exc,
        asyncio.TimeoutError
        | TimeoutError
        | httpx.TimeoutException
        | llm_exc.Timeout
        | openai.APITimeoutError,
    ):
        return ProviderTimeoutError, None
    if isinstance(exc, llm_exc.ContentPolicyViolationError):
        return ContentPolicyError, status
    if isinstance(exc, llm_exc.APIConnectionError | openai.APIConnectionError | httpx.HTTPError):
        # The provider could not be reached or its connection broke: transient.
        if status is not None and status > 500:
            return _by_status(status), status
        return ServiceUnavailableError, None
    if status == 402:
        # Payment required: this provider's account cannot serve; another provider may.
        return PermissionDeniedError, status
    if (by_class := _by_class(exc)) is not None:
        return by_class, status if status is not None and 400 <= status < 500 else None
    if status is not None:
        return _by_status(status), status
    if isinstance(exc, ValueError | TypeError):
        # LiteLLM raises these for requests it cannot translate for the provider.
        return BadRequestError, None
    return UnexpectedProviderError, None


def translate(
    exc: BaseException, provider: str, redactor: Redactor | None = None
) -> ExternalServiceError:
    """Map any upstream exception to the error tree, with its message scrubbed of secrets
    (those `redactor` knows, and credential shapes)."""
    if isinstance(exc, ExternalServiceError):
        return exc
    scrub = (redactor if redactor is not None else Redactor()).scrub
    message = scrub(str(getattr(exc, "message", None) or exc or type(exc).__name__))
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    status = _status_of(exc)
    if (status is None or status >= 500) and (found := _BODY_5XX.search(message)):
        status = int(found.group(1))
    kind, status = _classify(exc, status)
    return kind(
        f"{provider}: {message}",
        provider=provider,
        status_code=status if status and kind is not UnexpectedProviderError else None,
        retry_after_s=retry_after_seconds(_headers_of(exc)),
    )


@contextmanager
def upstream_errors(provider: str, redactor: Redactor | None = None) -> Iterator[None]:
    """Re-raise anything escaping the block as an `ExternalServiceError` for `provider`."""
    try:
        yield
    except ExternalServiceError:
        raise
    except Exception as exc:
        raise translate(exc, provider, redactor) from exc
