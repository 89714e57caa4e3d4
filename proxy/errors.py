"""The proxy's one error tree, and how each error reaches a client as an OpenAI-format body.

Why it exists: the retry/fallback policy branches on two class attributes (`retriable`,
`fallback_allowed`) instead of on lists of upstream types, and clients always get the HTTP
status and body shape the OpenAI SDK understands. Upstream exceptions (litellm, httpx,
asyncio) are translated into this tree in exactly one place: `proxy.upstream`.

    ExternalServiceError                 502  root; carries provider, status_code, type, code
    ├── InvalidApiKeyError               401  the caller's gateway key is missing or wrong:
    │                                         answered at once, no provider is called
    ├── ForbiddenError                   403  a valid gateway key that may not do this (a user
    │                                         on an admin route, or acting for someone else)
    │   ├── LinkInvalidError             403  a signed artifact link this gateway did not sign
    │   └── LinkExpiredError             403  a genuine signed artifact link past its expiry
    ├── RateLimitError                   429  retriable
    │   └── BudgetWaitTooLongError       429  our own budget: its queue would not serve the call
    │                                         before the deadline; not retried, fall back
    ├── AuthenticationError              401  a provider rejected our key: fall back
    │   └── MissingProviderKeyError      401  no key configured at any level: fall back
    ├── PermissionDeniedError            403  fall back
    ├── NotFoundError                    404  fall back
    │   └── ArtifactMissingError         404  no such artifact, or artifact links are off
    ├── BadRequestError                  400  the client's request: returned, never retried
    │   ├── ContentPolicyError           400  content policy refusal: returned as is
    │   ├── InvalidRequestError          400  the request breaks the OpenAI contract (`param`
    │   │                                     names the field) or could not be parsed
    │   └── RequestTooLargeError         413  the body exceeds gateway_settings.limits
    ├── ProviderTimeoutError             504  retriable
    ├── ProviderServerError              500/502/503/529  retriable
    │   └── ServiceUnavailableError      503  unreachable or overloaded; retriable
    │       └── ArtifactStoreUnavailableError 503  the artifact store did not answer; the
    │                                         caller may come back (`chain_retriable`)
    ├── UnexpectedProviderError          502  an upstream failure we cannot classify
    ├── InternalError                    500  the gateway's own failure: logged in detail,
    │                                         answered with a correlation id only
    └── AllProvidersFailedError          every provider of a task failed; carries each attempt
        └── DeadlineExceededError        504  the caller's deadline passed first; carries the
                                              attempts made until then

`retriable` says whether the same provider may be tried again, `fallback_allowed` whether the
next provider may be. Neither applies to the two chain errors at the bottom, which end a
request; `chain_retriable` says whether the caller may send the whole request again (the
`x-gateway-retriable` response header).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from core.http import RETRIABLE_HEADER

__all__ = [
    "CORRELATION_HEADER",
    "AllProvidersFailedError",
    "ArtifactMissingError",
    "ArtifactStoreUnavailableError",
    "AttemptFailure",
    "AuthenticationError",
    "BadRequestError",
    "BudgetWaitTooLongError",
    "ContentPolicyError",
    "DeadlineExceededError",
    "ExternalServiceError",
    "ForbiddenError",
    "InternalError",
    "InvalidApiKeyError",
    "InvalidRequestError",
    "LinkExpiredError",
    "LinkInvalidError",
    "MissingProviderKeyError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "UnexpectedProviderError",
]


class ExternalServiceError(Exception):
    """A provider (or the gateway in front of it) could not serve a request."""

    retriable: ClassVar[bool] = False
    # Whether another provider may serve the same request after this error.
    fallback_allowed: ClassVar[bool] = True
    default_status: ClassVar[int] = 502
    error_type: ClassVar[str] = "api_error"
    error_code: ClassVar[str] = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code or self.default_status
        self.retry_after_s = retry_after_s
        # The request field the error is about (`messages[2].tool_call_id`), as OpenAI names it.
        self.param = param

    @property
    def type(self) -> str:
        return self.error_type

    @property
    def code(self) -> str:
        return self.error_code

    @property
    def chain_retriable(self) -> bool:
        """Whether the caller may send the whole request again later (a single error that ends
        a request, e.g. a bad request, never is)."""
        return False

    def to_openai_body(self) -> dict[str, Any]:
        """The body clients receive: OpenAI's `{"error": {...}}` shape."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.error_code,
                "provider": self.provider,
            }
        }

    def response_headers(self) -> dict[str, str]:
        """The `x-gateway-retriable` marker, and Retry-After when the caller may come back."""
        retriable = self.chain_retriable
        headers = {RETRIABLE_HEADER: "true" if retriable else "false"}
        if self.retry_after_s is not None and (retriable or self.status_code == 429):
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after_s)))
        return headers


class InvalidApiKeyError(ExternalServiceError):
    """The caller's gateway key is missing or wrong. Raised before any provider is chosen, so
    it is not a provider's failure: nothing is retried and no fallback may serve it."""

    fallback_allowed = False
    default_status = 401
    error_type = "invalid_request_error"
    error_code = "invalid_api_key"


class ForbiddenError(ExternalServiceError):
    """The caller's gateway key is valid but its role may not do this; like a wrong key, it is
    not a provider's failure, so nothing is retried and no fallback serves it."""

    fallback_allowed = False
    default_status = 403
    error_type = "permission_error"
    error_code = "forbidden"


class LinkInvalidError(ForbiddenError):
    """A signed artifact link whose signature is malformed or not this gateway's."""

    error_code = "invalid_signature"


class LinkExpiredError(ForbiddenError):
    """A signed artifact link this gateway made, past its expiry: ask for a fresh link."""

    error_code = "link_expired"


class RateLimitError(ExternalServiceError):
    retriable = True
    default_status = 429
    error_type = "rate_limit_error"
    error_code = "rate_limit_exceeded"


class BudgetWaitTooLongError(RateLimitError):
    """The gateway's own budget for this provider (`gateway_settings.budgets`) could not serve
    the call before the caller's deadline (or its queue is full); `retry_after_s` is the
    expected wait. No provider was called, so another one may serve at once (fallback); the
    caller may come back after the wait (`chain_retriable`)."""

    retriable = False

    @property
    def chain_retriable(self) -> bool:
        return True


class AuthenticationError(ExternalServiceError):
    default_status = 401
    error_type = "authentication_error"
    error_code = "provider_authentication_failed"


class MissingProviderKeyError(AuthenticationError):
    error_code = "provider_key_missing"


class PermissionDeniedError(ExternalServiceError):
    default_status = 403
    error_type = "permission_error"
    error_code = "provider_permission_denied"


class NotFoundError(ExternalServiceError):
    default_status = 404
    error_type = "not_found_error"
    error_code = "model_not_found"


class ArtifactMissingError(NotFoundError):
    """No artifact under a signed link's id (never stored, deleted or collected), or the
    gateway serves no artifact links; the gateway's own answer, so no fallback applies."""

    fallback_allowed = False
    error_code = "artifact_not_found"


class BadRequestError(ExternalServiceError):
    fallback_allowed = False
    default_status = 400
    error_type = "invalid_request_error"
    error_code = "bad_request"


class ContentPolicyError(BadRequestError):
    error_code = "content_policy_violation"


class InvalidRequestError(BadRequestError):
    error_code = "invalid_request"


class RequestTooLargeError(BadRequestError):
    """The request body is larger than the gateway accepts; refused before it is read whole."""

    default_status = 413
    error_code = "request_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the gateway's limit of {limit} bytes")


class ProviderTimeoutError(ExternalServiceError):
    retriable = True
    default_status = 504
    error_type = "timeout_error"
    error_code = "provider_timeout"


class ProviderServerError(ExternalServiceError):
    retriable = True
    default_status = 502
    error_type = "api_error"
    error_code = "provider_server_error"


class ServiceUnavailableError(ProviderServerError):
    default_status = 503
    error_code = "provider_unavailable"


class ArtifactStoreUnavailableError(ServiceUnavailableError):
    """The artifact store behind a signed link did not answer (down, throttling, a 5xx): no
    provider is involved, and the same link may work once the store is back."""

    fallback_allowed = False
    error_code = "artifact_store_unavailable"

    @property
    def chain_retriable(self) -> bool:
        return True


class UnexpectedProviderError(ExternalServiceError):
    default_status = 502
    error_code = "unexpected_provider_error"


CORRELATION_HEADER = "x-gateway-correlation-id"


class InternalError(ExternalServiceError):
    """The gateway itself failed (a bug, not a provider's or the caller's doing): the detail is
    logged under `correlation_id`; the caller learns that id and nothing of the internals."""

    fallback_allowed = False
    default_status = 500
    error_type = "server_error"
    error_code = "internal_error"

    def __init__(self, correlation_id: str) -> None:
        super().__init__("internal error")
        self.correlation_id = correlation_id

    def to_openai_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": None,
                "code": self.error_code,
                "correlation_id": self.correlation_id,
            }
        }

    def response_headers(self) -> dict[str, str]:
        return {**super().response_headers(), CORRELATION_HEADER: self.correlation_id}


@dataclass(frozen=True, slots=True)
class AttemptFailure:
    """The last error one provider gave after all its attempts."""

    provider: str
    model: str
    attempts: int
    error: ExternalServiceError


def _combined_status(failures: Sequence[AttemptFailure]) -> int:
    statuses = {f.error.status_code for f in failures}
    if len(statuses) == 1:
        return statuses.pop()
    # Mixed failures: 503 says "try again later" when every cause was transient.
    return 503 if all(f.error.retriable or f.error.chain_retriable for f in failures) else 502


class AllProvidersFailedError(ExternalServiceError):
    """Every provider in a task's ordered list failed; the message names each of them."""

    error_code = "all_providers_failed"
    _summary: ClassVar[str] = "all providers failed for task"

    def __init__(self, task: str, failures: Sequence[AttemptFailure]) -> None:
        self.task = task
        self.failures = tuple(failures)
        parts = "; ".join(
            f"{f.provider} ({f.model}): {f.attempts} attempt(s), "
            f"{f.error.status_code} {f.error.message}"
            for f in self.failures
        )
        status = _combined_status(self.failures) if self.failures else 502
        retry_after = self.failures[-1].error.retry_after_s if self.failures else None
        super().__init__(
            f"{self._summary} '{task}': {parts or 'no attempt was made'}",
            status_code=status,
            retry_after_s=retry_after,
        )

    @property
    def type(self) -> str:
        kinds = {f.error.error_type for f in self.failures}
        return kinds.pop() if len(kinds) == 1 else self.error_type

    @property
    def chain_retriable(self) -> bool:
        # A budget's refusal is not retried in the chain, yet the caller may come back.
        return bool(self.failures) and all(
            f.error.retriable or f.error.chain_retriable for f in self.failures
        )

    def to_openai_body(self) -> dict[str, Any]:
        body = super().to_openai_body()
        body["error"]["type"] = self.type
        body["error"]["attempts"] = [
            {
                "provider": f.provider,
                "model": f.model,
                "attempts": f.attempts,
                "status": f.error.status_code,
                "type": f.error.error_type,
                "message": f.error.message,
            }
            for f in self.failures
        ]
        return body


class DeadlineExceededError(AllProvidersFailedError):
    """The caller's deadline passed before a provider answered: the attempt in flight was
    cancelled and no retry or fallback started after it. Sending the request again cannot
    help the caller, whose time is up."""

    default_status = 504
    error_type = "timeout_error"
    error_code = "deadline_exceeded"
    _summary = "deadline passed for task"

    def __init__(self, task: str, failures: Sequence[AttemptFailure]) -> None:
        super().__init__(task, failures)
        self.status_code = self.default_status
        self.retry_after_s = None

    @property
    def type(self) -> str:
        return self.error_type

    @property
    def chain_retriable(self) -> bool:
        return False
