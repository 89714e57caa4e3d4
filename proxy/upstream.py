"""The one place where upstream exceptions become `proxy.errors` exceptions.

Why it exists: LiteLLM raises its own exception classes (mostly subclasses of the openai SDK's),
httpx and aiohttp raise transport errors, asyncio raises timeouts and providers answer with HTTP
error bodies (the direct transport: `translate_http`). The retry policy must see one
vocabulary, and provider error messages (which sometimes echo request details) must be scrubbed
of secrets before they can reach a log line or a client.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
import litellm.exceptions as llm_exc
import openai
import orjson

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

__all__ = ["translate", "translate_http", "upstream_errors", "without_internals"]

_MAX_MESSAGE = 500
_TRACEBACK = "Traceback (most recent call last)"
# A source file's path as tracebacks print it (`File "/x/y.py", line 3`), or a bare one.
_SOURCE_PATH = re.compile(
    r'(?:File ")?(?:[A-Za-z]:)?[\\/]?(?:[\w.-]+[\\/])+[\w.-]+\.pyc?\b(?:", line \d+)?'
)
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
    if isinstance(
        exc,
        llm_exc.APIConnectionError
        | openai.APIConnectionError
        | httpx.HTTPError
        | aiohttp.ClientError,
    ):
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


def without_internals(message: str) -> str:
    """`message` without a Python traceback or source paths: LiteLLM appends
    `traceback.format_exc()` to the messages of errors it cannot map, and neither a caller nor
    a log reader of an error message should learn the gateway's file layout from it."""
    message = message.split(_TRACEBACK, 1)[0]
    message = _SOURCE_PATH.sub("[internal]", message)
    return message.strip() or "no error message"


def _error(
    kind: type[ExternalServiceError],
    provider: str,
    message: str,
    *,
    status: int | None,
    headers: Mapping[str, str] | None,
    redactor: Redactor | None,
) -> ExternalServiceError:
    """The error both translations end in: message scrubbed of secrets (those `redactor`
    knows, and credential shapes) and truncated, status and Retry-After kept."""
    scrub = (redactor if redactor is not None else Redactor()).scrub
    message = scrub(without_internals(message))
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    return kind(
        f"{provider}: {message}",
        provider=provider,
        status_code=status if status and kind is not UnexpectedProviderError else None,
        retry_after_s=retry_after_seconds(headers),
    )


def translate(
    exc: BaseException, provider: str, redactor: Redactor | None = None
) -> ExternalServiceError:
    """Map any upstream exception to the error tree, with its message scrubbed of secrets."""
    if isinstance(exc, ExternalServiceError):
        return exc
    message = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    status = _status_of(exc)
    if (status is None or status >= 500) and (found := _BODY_5XX.search(message)):
        status = int(found.group(1))
    kind, status = _classify(exc, status)
    return _error(
        kind, provider, message, status=status, headers=_headers_of(exc), redactor=redactor
    )


# Error codes by which providers mark a refusal on content grounds in a 400 body.
_CONTENT_POLICY_CODES = frozenset({"content_policy_violation", "content_filter"})


def _provider_message(body: bytes) -> tuple[str, str | None]:
    """The provider's own message and error code from an error body (all three providers
    nest them under `error`), else the body's text."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace").strip() or "no error body", None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        code = error.get("code") if isinstance(error.get("code"), str) else error.get("type")
        return str(error["message"]), code if isinstance(code, str) else None
    return body.decode(errors="replace"), None


def translate_http(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes,
    provider: str,
    redactor: Redactor | None = None,
) -> ExternalServiceError:
    """Map a provider's HTTP error answer (status, headers, body) to the error tree: the same
    classes, Retry-After and scrubbed message as `translate` gives LiteLLM's exceptions."""
    message, code = _provider_message(body)
    refused = status == 400 and code in _CONTENT_POLICY_CODES
    kind = ContentPolicyError if refused else _by_status(status)
    return _error(kind, provider, message, status=status, headers=headers, redactor=redactor)


@contextmanager
def upstream_errors(provider: str, redactor: Redactor | None = None) -> Iterator[None]:
    """Re-raise anything escaping the block as an `ExternalServiceError` for `provider`."""
    try:
        yield
    except ExternalServiceError:
        raise
    except Exception as exc:
        raise translate(exc, provider, redactor) from exc
