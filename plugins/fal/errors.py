"""The Fal plugin's errors, and the one place where Fal's answers and httpx's failures become them.

Why it exists: callers (the gateway's retry policy) branch on ``retriable`` and ``status_code``
alone, never on httpx types or Fal's body shapes, so every failure of a Fal call is translated
here, by ``error_from_response`` and the ``fal_errors`` context manager.

    FalError                    502  root; retriable = False
    ├── FalInvalidRequest       400  the OpenAI-shaped request cannot be served (bad prompt,
    │                                LoRA, size, n); raised before any call to Fal
    ├── FalBadRequest           400  Fal refused the request as it was sent
    │   └── FalValidationError  422  Fal's model rejected the input (``detail`` list)
    ├── FalAuthError            401  Fal rejected the key (403 too)
    ├── FalNotFound             404  unknown application or request id
    ├── FalRateLimited          429  retriable; carries Retry-After
    ├── FalServerError          5xx  retriable; carries Fal's ``error_type``
    ├── FalTimeout              504  retriable; Fal or the connection timed out
    ├── FalUnavailable          503  retriable; Fal could not be reached
    ├── FalJobFailed            502  the queue job ended without a result (cancelled, failed)
    ├── FalProtocolError        502  an answer that is not what the queue protocol promises
    └── FalWebhookRejected      401  a callback whose signature, timestamp or body is not Fal's
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx

from core.http import retry_after_seconds

__all__ = [
    "FalAuthError",
    "FalBadRequest",
    "FalError",
    "FalInvalidRequest",
    "FalJobFailed",
    "FalNotFound",
    "FalProtocolError",
    "FalRateLimited",
    "FalServerError",
    "FalTimeout",
    "FalUnavailable",
    "FalValidationError",
    "FalWebhookRejected",
    "error_from_response",
    "fal_errors",
]

_MAX_MESSAGE = 300


class FalError(Exception):
    """A Fal call failed; ``status_code`` is the HTTP status the gateway should answer."""

    retriable: ClassVar[bool] = False
    status_code: ClassVar[int] = 502

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        retry_after_s: float | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s
        self.error_type = error_type


class FalInvalidRequest(FalError):
    status_code = 400


class FalBadRequest(FalError):
    status_code = 400


class FalValidationError(FalBadRequest):
    status_code = 422


class FalAuthError(FalError):
    status_code = 401


class FalNotFound(FalError):
    status_code = 404


class FalRateLimited(FalError):
    retriable = True
    status_code = 429


class FalServerError(FalError):
    retriable = True
    status_code = 502


class FalTimeout(FalError):
    retriable = True
    status_code = 504


class FalUnavailable(FalServerError):
    status_code = 503


class FalJobFailed(FalError):
    status_code = 502


class FalProtocolError(FalError):
    status_code = 502


class FalWebhookRejected(FalError):
    status_code = 401


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for entry in detail:
            if isinstance(entry, Mapping):
                loc = ".".join(str(p) for p in entry.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {entry.get('msg', '')}" if loc else str(entry.get("msg")))
        return "; ".join(parts) or "invalid input"
    return str(detail)


def error_from_response(status: int, headers: Mapping[str, str], text: str) -> FalError:
    """The error for a Fal answer with a status of 400 or above."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, Mapping) else None
    message = _detail_text(detail) if detail is not None else (text or f"HTTP {status}")
    message = f"Fal {status}: {message[:_MAX_MESSAGE]}"
    error_type = (body.get("error_type") if isinstance(body, Mapping) else None) or headers.get(
        "x-fal-error-type"
    )
    kind: type[FalError]
    if status == 422:
        kind = FalValidationError
    elif status in (401, 403):
        kind = FalAuthError
    elif status == 404:
        kind = FalNotFound
    elif status == 429:
        kind = FalRateLimited
    elif status in (408, 504):
        kind = FalTimeout
    elif status == 503:
        kind = FalUnavailable
    elif status >= 500:
        kind = FalServerError
    else:
        kind = FalBadRequest
    return kind(message, retry_after_s=retry_after_seconds(headers), error_type=error_type)


@contextmanager
def fal_errors() -> Iterator[None]:
    """Re-raise httpx's failures (and undecodable answers) inside the block as FalErrors."""
    try:
        yield
    except FalError:
        raise
    except httpx.TimeoutException as exc:
        raise FalTimeout(f"Fal timed out: {type(exc).__name__}") from exc
    except httpx.HTTPError as exc:
        raise FalUnavailable(f"Fal could not be reached: {type(exc).__name__}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise FalProtocolError(f"unexpected answer from Fal: {exc}") from exc
