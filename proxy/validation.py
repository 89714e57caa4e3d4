"""`validate_key()`: does a provider accept a key? Checked with its cheapest real call.

Why it exists: a user pasting a key wants to know at once whether it works, and an invalid key
should not be stored by accident. Each provider's cheapest authenticated call is a model
listing (free, no tokens): Anthropic `GET /v1/models`, OpenAI `GET /models`, Gemini
`GET /models`. 2xx means valid, 401/403 invalid, anything else (a timeout, a 5xx, a refused
connection) unreachable: the key's worth is then unknown. Fal and Vertex offer no free
authenticated call; their keys are reported `unchecked`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import httpx

from proxy.routing import RoutingTable

__all__ = ["DEFAULT_BASES", "Verdict", "base_urls", "validate_key"]

_GEMINI_BAD_KEY = re.compile(r"API_KEY_INVALID|API key not valid")

Verdict = Literal["valid", "invalid", "unreachable", "unchecked"]

# The real APIs' bases, in the shape LiteLLM's `api_base` takes for each provider.
DEFAULT_BASES: Mapping[str, str] = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
}


def base_urls(routing: RoutingTable) -> dict[str, str]:
    """Each provider's base as the routing table calls it (the emulators', in tests)."""
    bases = dict(DEFAULT_BASES)
    for task in routing.tasks():
        route = routing.get(task)
        for deployment in route.deployments if route is not None else ():
            base = deployment.params.get("api_base")
            if isinstance(base, str) and deployment.provider in DEFAULT_BASES:
                bases[deployment.provider] = base.rstrip("/")
    return bases


def _request(provider: str, key: str, base: str) -> httpx.Request | None:
    if provider == "anthropic":
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        return httpx.Request("GET", f"{base}/v1/models", headers=headers)
    if provider == "openai":
        return httpx.Request("GET", f"{base}/models", headers={"authorization": f"Bearer {key}"})
    if provider == "gemini":
        return httpx.Request("GET", f"{base}/models", headers={"x-goog-api-key": key})
    return None


async def validate_key(
    provider: str, key: str, *, bases: Mapping[str, str], client: httpx.AsyncClient
) -> Verdict:
    """valid, invalid or unreachable, for `key` at `provider` (unchecked where no call fits)."""
    request = _request(provider, key, bases.get(provider, DEFAULT_BASES.get(provider, "")))
    if request is None:
        return "unchecked"
    try:
        response = await client.send(request)
    except httpx.HTTPError:
        return "unreachable"
    if response.is_success:
        return "valid"
    if response.status_code in (401, 403):
        return "invalid"
    # Gemini answers a bad key with 400 (reason API_KEY_INVALID, "API key not valid").
    if (
        provider == "gemini"
        and response.status_code == 400
        and _GEMINI_BAD_KEY.search(response.text)
    ):
        return "invalid"
    return "unreachable"
