"""What a chat request asks of a provider: the client's parameters, adapted per deployment.

Why it exists: a client's request body reaches a provider only through this module. It keeps
the OpenAI parameters a client may set (an allow-list: anything else could redirect our
provider key), keeps OpenAI semantics where a provider lacks a feature natively (`adapt`), and
builds the arguments of one attempt, for the direct transport (`proxy.transport`) or for
`litellm.acompletion`. Pure functions, no I/O: the attempt's trace headers are read from the
current span.
"""

from __future__ import annotations

from typing import Any

from proxy.routing import Deployment
from proxy.tracing import outgoing_headers
from proxy.transport import Transport

__all__ = ["CLIENT_PARAMS", "adapt", "client_params", "direct_params", "litellm_kwargs"]

# The OpenAI chat-completion parameters clients may set. Everything else is dropped: LiteLLM
# accepts call-level overrides such as `base_url` or `api_base`, and forwarding those from a
# client would send our provider key wherever the client pointed it.
CLIENT_PARAMS = frozenset(
    {
        "messages",
        "temperature",
        "top_p",
        "n",
        "stream",
        "stream_options",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "response_format",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "reasoning_effort",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
    }
)
_JSON_OBJECT = {"type": "json_object"}
_ANY_OBJECT_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "json_object", "schema": {"type": "object"}},
}


def client_params(request: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters a client may set (`CLIENT_PARAMS`), the rest dropped."""
    return {k: v for k, v in request.items() if k in CLIENT_PARAMS}


def adapt(deployment: Deployment, params: dict[str, Any]) -> dict[str, Any]:
    """Keep OpenAI request semantics where a provider lacks the feature natively."""
    if deployment.provider == "anthropic" and params.get("response_format") == _JSON_OBJECT:
        # Anthropic has no JSON mode and LiteLLM silently drops json_object for it; a schema
        # that admits any object makes LiteLLM force a JSON tool call instead.
        return {**params, "response_format": _ANY_OBJECT_SCHEMA}
    return params


def direct_params(
    transport: Transport | None, deployment: Deployment, params: dict[str, Any]
) -> dict[str, Any] | None:
    """The request's params when the direct transport serves it on `deployment`."""
    if transport is None:
        return None
    adapted = adapt(deployment, params)
    return adapted if transport.owns(deployment, adapted) else None


def litellm_kwargs(
    deployment: Deployment, key: str, params: dict[str, Any], *, timeout_s: float
) -> dict[str, Any]:
    """The arguments of one `litellm.acompletion` attempt on `deployment` with `key`."""
    # The attempt's span is current here: the provider's request continues the trace.
    trace = outgoing_headers()
    if trace:
        extra = deployment.params.get("extra_headers")
        trace = {**extra, **trace} if isinstance(extra, dict) else trace
    return {
        # Config-level params are defaults a client may override; model and api_base
        # cannot be overridden since clients never send them through CLIENT_PARAMS.
        **deployment.params,
        **adapt(deployment, params),
        "api_key": key,
        "num_retries": 0,
        "timeout": timeout_s,
        "drop_params": True,
        # LiteLLM's proxy registers its own router/budget callbacks globally; they serve its
        # pipeline, not this one, and cost CPU per call. The gateway logs for itself.
        "no-log": True,
        **({"extra_headers": trace} if trace else {}),
    }
