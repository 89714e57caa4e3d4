"""Helpers shared by the direct-transport tests: deployments pointed at the emulators."""

from __future__ import annotations

import uuid
from typing import Any

from emulators.testing import EmulatorHandle
from proxy.routing import Deployment

__all__ = ["MODELS", "PNG", "PROVIDERS", "TOOL", "base_url", "deployment", "user"]

PROVIDERS = ("anthropic", "openai", "gemini")
MODELS = {
    "anthropic": "anthropic/claude-sonnet-4-20250514",
    "openai": "openai/gpt-4o",
    "gemini": "gemini/gemini-2.5-flash",
}
# A 1x1 transparent PNG.
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
TOOL = {
    "type": "function",
    "function": {
        "name": "tag_product",
        "description": "Tag a product image",
        "parameters": {
            "type": "object",
            "properties": {"tag": {"type": "string"}},
            "required": ["tag"],
        },
    },
}


def base_url(provider: str, handle: EmulatorHandle) -> str:
    return {
        "anthropic": handle.url,
        "openai": f"{handle.url}/v1",
        "gemini": f"{handle.url}/v1beta",
    }[provider]


def deployment(provider: str, handle: EmulatorHandle, **params: Any) -> Deployment:
    """The provider's deployment as litellm_config.yaml would give it, at its emulator."""
    model = MODELS[provider]
    return Deployment(
        group="tests",
        provider=provider,
        model=model,
        key_env=None,
        literal_key=None,
        params={"model": model, "api_base": base_url(provider, handle), **params},
    )


def user(text: str) -> list[dict[str, Any]]:
    """One user message, made unique so the emulators' fault counters never collide."""
    return [{"role": "user", "content": f"{text} {uuid.uuid4().hex[:8]}"}]
