"""The Vertex plugin's errors, and the one place where Vertex's answers, httpx's failures and
google-auth's failures become them.

Why it exists: callers (the gateway's retry policy) branch on ``retriable``, ``status_code``
and ``content_policy`` alone, never on httpx or google-auth types or Google's error bodies, so
every failure of a Vertex call is translated here, by ``error_from_response`` and the
``vertex_errors`` context manager.

    VertexError                   502  root; retriable = False
    ├── VertexInvalidRequest      400  the OpenAI-shaped request cannot be served (prompt, size,
    │                                  aspect ratio, images); raised before any call to Vertex
    ├── VertexConfigError         500  a model group's options in the config are invalid (a
    │                                  safety category or threshold); raised at start-up
    ├── VertexBadRequest          400  Vertex refused the request as it was sent (INVALID_ARGUMENT)
    ├── VertexContentPolicy       400  the prompt or the image was blocked; ``reason`` names
    │                                  Google's blockReason / finishReason / raiFilteredReason
    ├── VertexCredentialsError    401  no usable credentials or project; names what to set
    ├── VertexAuthError           401  Google rejected the token or the service account (403 too)
    ├── VertexNotFound            404  unknown model, project or location
    ├── VertexRateLimited         429  retriable; RESOURCE_EXHAUSTED, carries Retry-After
    ├── VertexServerError         5xx  retriable; INTERNAL and other server faults
    │   └── VertexUnavailable     503  retriable; UNAVAILABLE or unreachable
    ├── VertexTimeout             504  retriable; DEADLINE_EXCEEDED or the connection timed out
    └── VertexProtocolError       502  an answer that is not what the API promises
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx
from google.auth import exceptions as auth_exceptions

from core.http import retry_after_seconds

__all__ = [
    "CREDENTIALS_HINT",
    "VertexAuthError",
    "VertexBadRequest",
    "VertexConfigError",
    "VertexContentPolicy",
    "VertexCredentialsError",
    "VertexError",
    "VertexInvalidRequest",
    "VertexNotFound",
    "VertexProtocolError",
    "VertexRateLimited",
    "VertexServerError",
    "VertexTimeout",
    "VertexUnavailable",
    "error_from_response",
    "vertex_errors",
]

_MAX_MESSAGE = 300
CREDENTIALS_HINT = (
    "set GOOGLE_APPLICATION_CREDENTIALS (a service-account JSON file) and GOOGLE_CLOUD_PROJECT, "
    "or store a service account as the 'vertex' key (`gateway keys set`)"
)


class VertexError(Exception):
    """A Vertex call failed; ``status_code`` is the HTTP status the gateway should answer."""

    retriable: ClassVar[bool] = False
    status_code: ClassVar[int] = 502
    # A refusal on content grounds: another, differently configured provider may serve it.
    content_policy: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        retry_after_s: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s
        self.reason = reason


class VertexInvalidRequest(VertexError):
    status_code = 400


class VertexConfigError(VertexError):
    status_code = 500


class VertexBadRequest(VertexError):
    status_code = 400


class VertexContentPolicy(VertexError):
    status_code = 400
    content_policy = True


class VertexCredentialsError(VertexError):
    status_code = 401


class VertexAuthError(VertexError):
    status_code = 401


class VertexNotFound(VertexError):
    status_code = 404


class VertexRateLimited(VertexError):
    retriable = True
    status_code = 429


class VertexServerError(VertexError):
    retriable = True
    status_code = 502


class VertexUnavailable(VertexServerError):
    status_code = 503


class VertexTimeout(VertexError):
    retriable = True
    status_code = 504


class VertexProtocolError(VertexError):
    status_code = 502


# Google's canonical status names (the `error.status` of an answer) where they decide the kind
# better than the HTTP status does.
_BY_GOOGLE_STATUS: Mapping[str, type[VertexError]] = {
    "RESOURCE_EXHAUSTED": VertexRateLimited,
    "UNAVAILABLE": VertexUnavailable,
    "DEADLINE_EXCEEDED": VertexTimeout,
    "UNAUTHENTICATED": VertexAuthError,
    "PERMISSION_DENIED": VertexAuthError,
    "NOT_FOUND": VertexNotFound,
    "INTERNAL": VertexServerError,
}


_BY_HTTP_STATUS: Mapping[int, type[VertexError]] = {
    401: VertexAuthError,
    403: VertexAuthError,
    404: VertexNotFound,
    408: VertexTimeout,
    429: VertexRateLimited,
    503: VertexUnavailable,
    504: VertexTimeout,
}


def _kind_of_status(status: int) -> type[VertexError]:
    if status in _BY_HTTP_STATUS:
        return _BY_HTTP_STATUS[status]
    return VertexServerError if status >= 500 else VertexBadRequest


def error_from_response(status: int, headers: Mapping[str, str], text: str) -> VertexError:
    """The error for a Vertex answer with a status of 400 or above."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        error = body[0].get("error")  # streaming endpoints wrap the error in a list
    google_status = error.get("status") if isinstance(error, Mapping) else None
    detail = error.get("message") if isinstance(error, Mapping) else None
    message = str(detail) if detail else (text or f"HTTP {status}")
    label = f"{status} {google_status}" if google_status else str(status)
    kind = _BY_GOOGLE_STATUS.get(str(google_status), _kind_of_status(status))
    return kind(
        f"Vertex {label}: {message[:_MAX_MESSAGE]}", retry_after_s=retry_after_seconds(headers)
    )


@contextmanager
def vertex_errors() -> Iterator[None]:
    """Re-raise httpx's and google-auth's failures (and undecodable answers) inside the block
    as VertexErrors."""
    try:
        yield
    except VertexError:
        raise
    except httpx.TimeoutException as exc:
        raise VertexTimeout(f"Vertex timed out: {type(exc).__name__}") from exc
    except httpx.HTTPError as exc:
        raise VertexUnavailable(f"Vertex could not be reached: {type(exc).__name__}") from exc
    except (httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict) as exc:
        # httpx's usage errors (a malformed api_base, a stream read twice): nothing was sent.
        raise VertexProtocolError(f"the Vertex call could not be made: {exc}") from exc
    except auth_exceptions.RefreshError as exc:
        # The token endpoint refused the service account (revoked key, unknown account); its
        # message is Google's text and holds no key material.
        raise VertexAuthError(f"Google refused the service account: {exc}") from exc
    except auth_exceptions.TransportError as exc:
        raise VertexUnavailable(f"Google's token endpoint could not be reached: {exc}") from exc
    except auth_exceptions.GoogleAuthError as exc:
        raise VertexCredentialsError(
            f"the Vertex credentials are not usable ({type(exc).__name__}): {CREDENTIALS_HINT}"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise VertexProtocolError(f"unexpected answer from Vertex: {exc}") from exc
