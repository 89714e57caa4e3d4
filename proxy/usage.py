"""Token usage of chat answers, and the final chunk of a streamed one.

Why it exists: an answer's cost needs its token counts, and a stream has them only in its last
chunk when the provider is asked for them (`stream_options.include_usage`). The gateway always
asks; the client sees that usage chunk only if it asked too, and in every case the stream ends
with one chunk (`choices: []`, like OpenAI's usage chunk) carrying the gateway's accounting:
`"x_gateway": {"cost_usd": ..., "latency_ms": {"total", "upstream", "queue", "overhead"}}`
(the openai SDK exposes it as `chunk.model_extra["x_gateway"]`). Chunks come as LiteLLM's
pydantic objects, dicts, or ready SSE bytes (a direct transport); all three are read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.accounting import RequestLedger

__all__ = ["StreamUsage", "usage_tokens", "with_usage"]

_USAGE_MARK = b'"usage":{'


def _tokens(usage: Any) -> tuple[int, int] | None:
    if usage is None:
        return None
    if isinstance(usage, Mapping):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    else:
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
    return int(prompt or 0), int(completion or 0)


def usage_tokens(value: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens of a chat completion (pydantic or dict), if it says."""
    usage = value.get("usage") if isinstance(value, Mapping) else getattr(value, "usage", None)
    return _tokens(usage)


def with_usage(params: dict[str, Any]) -> dict[str, Any]:
    """`params` asking the provider for the stream's usage."""
    options = params.get("stream_options")
    merged = {**options, "include_usage": True} if isinstance(options, Mapping) else None
    return {**params, "stream_options": merged or {"include_usage": True}}


def _as_dict(chunk: Any) -> dict[str, Any] | None:
    if isinstance(chunk, dict):
        return chunk
    if isinstance(chunk, bytes):
        try:
            data = orjson.loads(chunk.strip().removeprefix(b"data:").strip())
        except orjson.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None
    dumped: dict[str, Any] = chunk.model_dump(exclude_none=True)
    return dumped


class StreamUsage:
    """Follows one stream: holds back its usage chunk and writes its final chunk."""

    def __init__(self, client_wants_usage: bool) -> None:
        self._client_wants_usage = client_wants_usage
        self._held: dict[str, Any] | None = None
        self._last: Any = None
        self.tokens: tuple[int, int] | None = None

    @staticmethod
    def client_asked(params: Mapping[str, Any]) -> bool:
        options = params.get("stream_options")
        return isinstance(options, Mapping) and options.get("include_usage") is True

    def hold(self, chunk: Any) -> bool:
        """True when `chunk` carries the usage: it is kept for the final chunk, not sent."""
        self._last = chunk
        if isinstance(chunk, bytes):
            if _USAGE_MARK not in chunk:
                return False
        elif (
            chunk.get("usage") if isinstance(chunk, dict) else getattr(chunk, "usage", None)
        ) is None:
            return False
        data = _as_dict(chunk)
        tokens = _tokens(data.get("usage")) if data is not None else None
        if data is None or tokens is None:
            return False
        self._held, self.tokens = data, tokens
        return True

    def final_chunk(self, ledger: RequestLedger | None, cost_usd: float | None) -> bytes:
        """The SSE event ending the stream (before [DONE]), with the gateway's accounting."""
        base = self._held if self._held is not None else (_as_dict(self._last) or {})
        final: dict[str, Any] = {
            key: base[key] for key in ("id", "object", "created", "model") if key in base
        }
        # The held usage chunk's own choices (LiteLLM adds an empty delta) are dropped; one
        # with content would have been sent, since only chunks with usage are held.
        final["choices"] = [c for c in base.get("choices") or () if _has_content(c)]
        if self._client_wants_usage and self._held is not None:
            final["usage"] = self._held["usage"]
        final["x_gateway"] = {
            "cost_usd": cost_usd,
            "latency_ms": ledger.latency_ms() if ledger is not None else None,
        }
        return b"data: " + orjson.dumps(final) + b"\n\n"


def _has_content(choice: Any) -> bool:
    if not isinstance(choice, Mapping):
        return False
    delta = choice.get("delta") or {}
    return bool(choice.get("finish_reason") or any(v for v in delta.values() if v))
