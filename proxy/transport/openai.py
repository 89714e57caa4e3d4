"""OpenAI Chat Completions: nearly a pass-through, since the gateway speaks OpenAI already.

Why it exists: LiteLLM's OpenAI path parses the answer into pydantic objects and dumps them
again; here the upstream's JSON is the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.transport._wire import SUPPORTED_PARAMS, Prepared, StreamError

__all__ = ["DEFAULT_BASE", "PARAMS", "OpenAIStream", "prepare", "response"]

DEFAULT_BASE = "https://api.openai.com/v1"
# OpenAI takes every one of these as it is; what is left out (audio, prediction, reasoning
# and web search options) stays on the LiteLLM path, which knows per model what to drop.
PARAMS = SUPPORTED_PARAMS | {
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
}


def prepare(model: str, base: str, key: str, params: Mapping[str, Any]) -> Prepared:
    body = {**params, "model": model}
    options = params.get("stream_options")
    return Prepared(
        url=f"{base.rstrip('/')}/chat/completions",
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        body=orjson.dumps(body),
        model=model,
        include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
    )


def response(data: dict[str, Any], prepared: Prepared) -> dict[str, Any]:
    return data


class OpenAIStream:
    """Upstream chunks are already `chat.completion.chunk` objects."""

    def __init__(self, prepared: Prepared) -> None:
        self._prepared = prepared

    def feed(self, event: Any) -> list[dict[str, Any]]:
        if not isinstance(event, dict):
            return []
        if "error" in event:
            # A failure after the answer began: OpenAI sends it as a data event.
            raise StreamError(500, orjson.dumps(event))
        return [event]

    def close(self) -> list[dict[str, Any]]:
        return []
