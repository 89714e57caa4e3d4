"""Every upstream exception maps into the proxy's error tree, with the right retry/fallback
semantics, and reaches clients as an OpenAI-format body."""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import litellm.exceptions as llm_exc
import openai
import pytest

from proxy import errors as ours
from proxy.upstream import translate

_REQUEST = httpx.Request("POST", "http://provider.invalid/v1")

# Every public exception class of litellm.exceptions and what it must become. A new class in a
# LiteLLM upgrade fails test_every_litellm_exception_is_classified until it is added here.
EXPECTED: dict[str, type[ours.ExternalServiceError]] = {
    "APIConnectionError": ours.ServiceUnavailableError,
    "APIError": ours.ProviderServerError,
    "APIResponseValidationError": ours.ProviderServerError,
    "AuthenticationError": ours.AuthenticationError,
    "BadGatewayError": ours.ProviderServerError,
    "BadRequestError": ours.BadRequestError,
    "BlockedPiiEntityError": ours.BadRequestError,
    "BudgetExceededError": ours.BadRequestError,
    "ContentPolicyViolationError": ours.ContentPolicyError,
    "ContextWindowExceededError": ours.BadRequestError,
    "GuardrailRaisedException": ours.BadRequestError,
    "ImageFetchError": ours.BadRequestError,
    "InternalServerError": ours.ProviderServerError,
    "InvalidRequestError": ours.BadRequestError,
    "JSONSchemaValidationError": ours.ProviderServerError,
    "LiteLLMUnknownProvider": ours.BadRequestError,
    "MidStreamFallbackError": ours.ServiceUnavailableError,
    "MockException": ours.ProviderServerError,
    "ModelNotMappedError": ours.UnexpectedProviderError,
    "ModifyResponseException": ours.UnexpectedProviderError,
    "NotFoundError": ours.NotFoundError,
    "OpenAIError": ours.UnexpectedProviderError,
    "PaymentRequiredError": ours.PermissionDeniedError,
    "PermissionDeniedError": ours.PermissionDeniedError,
    "RateLimitError": ours.RateLimitError,
    "RejectedRequestError": ours.BadRequestError,
    "SensitiveDataRouteException": ours.UnexpectedProviderError,
    "ServiceUnavailableError": ours.ServiceUnavailableError,
    "Timeout": ours.ProviderTimeoutError,
    "UnprocessableEntityError": ours.BadRequestError,
    "UnsupportedParamsError": ours.BadRequestError,
    "VectorStoreSearchError": ours.BadRequestError,
}


def _instance(cls: type[BaseException]) -> BaseException:
    """Build `cls` filling its required constructor arguments with plausible values."""
    if cls is llm_exc.VectorStoreSearchError:
        return cls(failures=[])  # type: ignore[call-arg]
    kwargs: dict[str, Any] = {}
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if (
            param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
            or param.default is not param.empty
        ):
            continue
        if name == "response":
            kwargs[name] = httpx.Response(500, request=_REQUEST)
        elif name == "request":
            kwargs[name] = _REQUEST
        elif name in ("status_code", "code"):
            kwargs[name] = 500
        elif name == "body":
            kwargs[name] = None
        else:
            kwargs[name] = "upstream detail"
    return cls(**kwargs)


def _litellm_exception_classes() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(llm_exc, inspect.isclass)
        if issubclass(cls, BaseException)
    ]


def test_every_litellm_exception_is_classified() -> None:
    """Each public litellm exception class has an expected mapping in this test."""
    assert {cls.__name__ for cls in _litellm_exception_classes()} == set(EXPECTED)


@pytest.mark.parametrize("cls", _litellm_exception_classes(), ids=lambda c: c.__name__)
def test_litellm_exception_maps_to_its_error_class(cls: type[BaseException]) -> None:
    """Translating an instance of the class yields exactly the expected error class."""
    error = translate(_instance(cls), "anthropic")
    assert type(error) is EXPECTED[cls.__name__]
    assert error.provider == "anthropic"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), ours.ProviderTimeoutError),
        (httpx.ReadTimeout("slow", request=_REQUEST), ours.ProviderTimeoutError),
        (httpx.ConnectError("refused", request=_REQUEST), ours.ServiceUnavailableError),
        (openai.APIConnectionError(request=_REQUEST), ours.ServiceUnavailableError),
        (RuntimeError("something else"), ours.UnexpectedProviderError),
    ],
)
def test_transport_errors_map(
    exc: BaseException, expected: type[ours.ExternalServiceError]
) -> None:
    """Timeouts, connection failures and unknown errors map to their classes."""
    assert type(translate(exc, "openai")) is expected


@pytest.mark.parametrize(
    ("status", "expected", "retriable", "fallback"),
    [
        (400, ours.BadRequestError, False, False),
        (401, ours.AuthenticationError, False, True),
        (403, ours.PermissionDeniedError, False, True),
        (404, ours.NotFoundError, False, True),
        (429, ours.RateLimitError, True, True),
        (500, ours.ProviderServerError, True, True),
        (502, ours.ProviderServerError, True, True),
        (503, ours.ServiceUnavailableError, True, True),
        (529, ours.ProviderServerError, True, True),
    ],
)
def test_http_statuses_carry_the_retry_policy(
    status: int, expected: type[ours.ExternalServiceError], retriable: bool, fallback: bool
) -> None:
    """A provider status maps to a class whose retriable/fallback flags are the policy's."""
    exc = openai.APIStatusError(
        "failed", response=httpx.Response(status, request=_REQUEST), body=None
    )
    error = translate(exc, "gemini")
    assert type(error) is expected
    assert error.status_code == status
    assert (error.retriable, error.fallback_allowed) == (retriable, fallback)


def test_content_policy_is_not_retried_nor_moved() -> None:
    """Content-policy refusals are neither retriable nor allowed to fall back."""
    assert not ours.ContentPolicyError.retriable
    assert not ours.ContentPolicyError.fallback_allowed


def test_retry_after_is_read_from_the_provider_headers() -> None:
    """A provider's Retry-After reaches the error through the shared parser."""
    exc = openai.RateLimitError(
        "slow down",
        response=httpx.Response(429, headers={"retry-after": "7"}, request=_REQUEST),
        body=None,
    )
    assert translate(exc, "openai").retry_after_s == 7.0


def test_a_wrong_gateway_key_is_not_a_provider_authentication_failure() -> None:
    """InvalidApiKeyError has its own branch: never retried, never a reason to fall back."""
    error = ours.InvalidApiKeyError("invalid API key")
    assert not isinstance(error, ours.AuthenticationError)
    assert (error.status_code, error.retriable, error.fallback_allowed) == (401, False, False)
    assert ours.AuthenticationError.fallback_allowed
    assert ours.MissingProviderKeyError.fallback_allowed


def test_chain_failure_is_marked_retriable_only_when_every_provider_may_recover() -> None:
    """All-transient failures answer x-gateway-retriable: true with Retry-After; one 401 makes
    the chain final."""
    transient = ours.AllProvidersFailedError(
        "styling",
        [
            ours.AttemptFailure("gemini", "gemini/m", 3, ours.ServiceUnavailableError("a")),
            ours.AttemptFailure(
                "anthropic", "anthropic/m", 3, ours.RateLimitError("b", retry_after_s=1.2)
            ),
        ],
    )
    final = ours.AllProvidersFailedError(
        "styling",
        [
            ours.AttemptFailure("gemini", "gemini/m", 3, ours.ServiceUnavailableError("a")),
            ours.AttemptFailure("anthropic", "anthropic/m", 1, ours.AuthenticationError("b")),
        ],
    )
    assert transient.response_headers() == {"x-gateway-retriable": "true", "retry-after": "2"}
    assert final.response_headers() == {"x-gateway-retriable": "false"}


def test_deadline_exceeded_is_a_final_504_naming_the_attempts() -> None:
    """A chain cut by the caller's deadline is a 504 the caller must not send again."""
    error = ours.DeadlineExceededError(
        "visibility",
        [ours.AttemptFailure("gemini", "gemini/m", 1, ours.ProviderTimeoutError("slow"))],
    )
    body = error.to_openai_body()["error"]
    assert (error.status_code, body["code"], body["type"]) == (
        504,
        "deadline_exceeded",
        "timeout_error",
    )
    assert error.response_headers() == {"x-gateway-retriable": "false"}
    assert [a["provider"] for a in body["attempts"]] == ["gemini"]


def test_all_providers_failed_body_names_each_attempt() -> None:
    """The combined error's OpenAI body lists every provider with attempts and status."""
    failures = [
        ours.AttemptFailure("anthropic", "anthropic/m", 3, ours.RateLimitError("slow down")),
        ours.AttemptFailure("gemini", "gemini/m", 1, ours.AuthenticationError("bad key")),
    ]
    error = ours.AllProvidersFailedError("captioning", failures)
    body = error.to_openai_body()["error"]
    assert error.status_code == 502
    assert [(a["provider"], a["attempts"], a["status"]) for a in body["attempts"]] == [
        ("anthropic", 3, 429),
        ("gemini", 1, 401),
    ]
    assert "anthropic" in body["message"]
    assert "gemini" in body["message"]


def test_all_providers_failed_with_one_status_keeps_it() -> None:
    """When every provider failed the same way, the client sees that status."""
    failures = [
        ours.AttemptFailure("anthropic", "anthropic/m", 3, ours.RateLimitError("a")),
        ours.AttemptFailure("gemini", "gemini/m", 3, ours.RateLimitError("b")),
    ]
    assert ours.AllProvidersFailedError("styling", failures).status_code == 429
