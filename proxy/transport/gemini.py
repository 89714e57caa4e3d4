"""Gemini generateContent (Google AI Studio): LiteLLM's own request transform, the gateway's
own answer transform.

Why it exists: as for Anthropic, the request side (system instruction, function declarations
and responses, inline data-URL images, JSON schemas as `responseJsonSchema`) is LiteLLM's pure
`GoogleAIStudioGeminiConfig` / `transform_request_body`, so the provider sees what LiteLLM would
send; the answer side builds OpenAI dicts directly instead of pydantic objects.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from litellm.llms.gemini.chat.transformation import GoogleAIStudioGeminiConfig
from litellm.llms.vertex_ai.gemini.transformation import transform_request_body

from proxy.transport._wire import (
    SUPPORTED_PARAMS,
    Prepared,
    StreamError,
    chunk,
    completion,
    new_id,
)

__all__ = ["DEFAULT_BASE", "PARAMS", "GeminiStream", "GeminiTransform"]

DEFAULT_BASE = "https://generativelanguage.googleapis.com/v1beta"
PARAMS = SUPPORTED_PARAMS
# LiteLLM's finish-reason map for Gemini's reasons (anything unknown: "stop").
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "MALFORMED_FUNCTION_CALL": "stop",
    "TOO_MANY_TOOL_CALLS": "stop",
    "MALFORMED_RESPONSE": "stop",
    "UNEXPECTED_TOOL_CALL": "stop",
    "MISSING_THOUGHT_SIGNATURE": "stop",
}
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "OTHER",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "NO_IMAGE",
        "IMAGE_RECITATION",
        "IMAGE_OTHER",
        "ESCALATION",
    }
)
_NOT_SENT = ("messages", "stream", "stream_options")


def _finish(reason: str | None) -> str:
    if reason in _FILTERED:
        return "content_filter"
    return _FINISH.get(reason or "STOP", "stop")


def _usage(raw: Mapping[str, Any]) -> dict[str, Any]:
    prompt = (raw.get("promptTokenCount") or 0) + (raw.get("toolUsePromptTokenCount") or 0)
    candidates = raw.get("candidatesTokenCount") or 0
    thoughts = raw.get("thoughtsTokenCount") or 0
    total = raw.get("totalTokenCount") or 0
    # As LiteLLM: thinking tokens count as completion tokens unless already inside
    # candidatesTokenCount (which the totals tell).
    completion_tokens = candidates if prompt + candidates == total else candidates + thoughts
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": total,
    }
    cached = raw.get("cachedContentTokenCount")
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
        usage["cache_read_input_tokens"] = cached
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return usage


def _parts(parts: Any, first_index: int) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """(text, reasoning text, tool calls) of a candidate's parts; tool calls numbered on."""
    text: str | None = None
    thought: str | None = None
    calls: list[dict[str, Any]] = []
    for part in parts or ():
        if "functionCall" in part:
            call = part["functionCall"]
            arguments = json.dumps(call.get("args") or {}, ensure_ascii=False)
            calls.append(
                {
                    "id": call.get("id") or f"call_{uuid.uuid4().hex[:28]}",
                    "type": "function",
                    "function": {"name": call.get("name"), "arguments": arguments},
                    "index": first_index + len(calls),
                }
            )
        elif "text" in part:
            if part.get("thought"):
                thought = (thought or "") + part["text"]
            else:
                text = (text or "") + part["text"]
    return text, thought, calls


class GeminiTransform:
    """Requests out, answers in; one per transport."""

    def __init__(self) -> None:
        self._config = GoogleAIStudioGeminiConfig()

    def prepare(self, model: str, base: str, key: str, params: Mapping[str, Any]) -> Prepared:
        non_default = {k: v for k, v in params.items() if k not in _NOT_SENT and v is not None}
        optional = self._config.map_openai_params(non_default, {}, model, drop_params=True)
        optional.pop("stream", None)
        messages = copy.deepcopy(params["messages"])
        data = transform_request_body(messages, model, optional, "gemini", {}, None)
        stream = bool(params.get("stream"))
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        options = params.get("stream_options")
        return Prepared(
            url=f"{base.rstrip('/')}/models/{model}:{method}",
            headers={"x-goog-api-key": key, "content-type": "application/json"},
            body=orjson.dumps(data),
            model=model,
            include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
        )

    @staticmethod
    def response(data: dict[str, Any], prepared: Prepared) -> dict[str, Any]:
        candidates = data.get("candidates") or ()
        candidate = candidates[0] if candidates else {}
        text, thought, calls = _parts((candidate.get("content") or {}).get("parts"), 0)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if thought is not None:
            message["reasoning_content"] = thought
        if calls:
            for call in calls:
                del call["index"]
            message["tool_calls"] = calls
            finish = "tool_calls"
        elif not candidates:
            finish = "content_filter"  # promptFeedback.blockReason: nothing was generated
        else:
            finish = _finish(candidate.get("finishReason"))
        model = data.get("modelVersion") or prepared.model
        return completion(new_id(), model, message, finish, _usage(data.get("usageMetadata") or {}))


class GeminiStream:
    """Streamed GenerateContentResponse objects to OpenAI chunks."""

    def __init__(self, prepared: Prepared) -> None:
        self._prepared = prepared
        self._id = new_id()
        self._tools = 0
        self._usage: dict[str, Any] | None = None
        self._role_sent = False
        self._done = False

    def feed(self, event: Any) -> list[dict[str, Any]]:
        if not isinstance(event, dict):
            return []
        if "error" in event:
            error = event["error"]
            status = error.get("code") if isinstance(error, dict) else None
            raise StreamError(status if isinstance(status, int) else 500, orjson.dumps(event))
        model = event.get("modelVersion") or self._prepared.model
        if event.get("usageMetadata"):
            self._usage = event["usageMetadata"]
        candidates = event.get("candidates") or ()
        candidate = candidates[0] if candidates else {}
        text, thought, calls = _parts((candidate.get("content") or {}).get("parts"), self._tools)
        self._tools += len(calls)
        delta: dict[str, Any] = {}
        if text is not None:
            delta["content"] = text
        if thought is not None:
            delta["reasoning_content"] = thought
        if calls:
            delta["tool_calls"] = calls
        if not self._role_sent and delta:
            self._role_sent = True
            delta = {"role": "assistant", **delta}
        reason = candidate.get("finishReason")
        if not candidates and event.get("promptFeedback", {}).get("blockReason"):
            reason = "SAFETY"
        out = [chunk(self._id, model, delta)] if delta else []
        if reason is not None:
            finish = "tool_calls" if self._tools else _finish(reason)
            out.append(chunk(self._id, model, {}, finish))
            self._done = True
            if self._prepared.include_usage and self._usage is not None:
                out.append(chunk(self._id, model, None, usage=_usage(self._usage)))
        return out

    def close(self) -> list[dict[str, Any]]:
        if self._done or not self._role_sent:
            return []
        self._done = True
        out = [chunk(self._id, self._prepared.model, {}, "stop")]
        if self._prepared.include_usage and self._usage is not None:
            out.append(chunk(self._id, self._prepared.model, None, usage=_usage(self._usage)))
        return out
