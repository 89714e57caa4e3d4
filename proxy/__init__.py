"""The OpenAI-compatible proxy: LiteLLM's proxy app behind the gateway's fast path.

Modules: `routing` (task -> ordered providers, from litellm_config.yaml), `settings` (typed
settings built once), `errors` (the one error tree), `upstream` (translation of upstream errors),
`resilience` (the only retry/fallback loop, asking each provider's budget through
`budgeting`), `keys` (user > system > env key resolution),
`auth` (gateway keys and the master key, also LiteLLM's custom_auth hook), `admin` (the
/gateway/v1 key and identity routes), `validation` (a provider key checked with its cheapest
call), `identity` (all of these composed over the gateway database, `database`), `fastpath`
(the ASGI wrapper; `chat_params`, `chat_answer`, `chat_stream`: what it asks a provider, a
whole answer, a streamed one), `accounting` (each request's ledger, prices), `usage` (tokens,
a stream's final chunk), `metrics` (/metrics), `tracing` (OpenTelemetry spans), `observe` (the
outermost layer filling them), `openapi` (the document of the gateway's own routes), `server`
(uvicorn lifecycle). The proxy knows nothing of Kafka or the
consumers; the `gateway` package composes it with them.

Only the light modules are re-exported here: importing LiteLLM takes seconds, so modules that
need it are imported by whoever starts a server.
"""

from proxy.errors import (
    AllProvidersFailedError,
    AttemptFailure,
    AuthenticationError,
    BadRequestError,
    BudgetWaitTooLongError,
    ContentPolicyError,
    DeadlineExceededError,
    ExternalServiceError,
    ForbiddenError,
    InvalidApiKeyError,
    InvalidRequestError,
    MissingProviderKeyError,
    NotFoundError,
    PermissionDeniedError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    UnexpectedProviderError,
)
from proxy.routing import Deployment, RoutingTable, TaskRoute
from proxy.settings import KeysSettings, ProxySettings, ResilienceSettings, build_settings

__all__ = [
    "AllProvidersFailedError",
    "AttemptFailure",
    "AuthenticationError",
    "BadRequestError",
    "BudgetWaitTooLongError",
    "ContentPolicyError",
    "DeadlineExceededError",
    "Deployment",
    "ExternalServiceError",
    "ForbiddenError",
    "InvalidApiKeyError",
    "InvalidRequestError",
    "KeysSettings",
    "MissingProviderKeyError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "ProxySettings",
    "RateLimitError",
    "ResilienceSettings",
    "RoutingTable",
    "ServiceUnavailableError",
    "TaskRoute",
    "UnexpectedProviderError",
    "build_settings",
]
