"""Anthropic Messages: LiteLLM's own request transform, the gateway's own answer transform.

Why it exists: the request side (system prompt, tool and tool-result blocks, data-URL images,
`max_tokens` defaults from the cost map, a response_format served natively or by the forced
`json_tool_call` tool) is LiteLLM's `AnthropicConfig`, called directly: pure functions, so the
gateway gives the same answers as LiteLLM does. Its answer side builds pydantic objects, which
is what costs; the answer and stream transforms below build the same OpenAI dicts directly.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import orjson
from litellm.anthropic_beta_headers_manager import update_request_with_filtered_beta
from litellm.constants import RESPONSE_FORMAT_TOOL_NAME
from litellm.llms.anthropic.chat.transformation import AnthropicConfig

from proxy.transport._wire import SUPPORTED_PARAMS, Prepared, StreamError, chunk, completion

__all__ = ["DEFAULT_BASE", "PARAMS", "AnthropicStream", "AnthropicTransform"]

DEFAULT_BASE = "https://api.anthropic.com"
_VERSION = "2023-06-01"
PARAMS = SUPPORTED_PARAMS
# LiteLLM's finish-reason map for Anthropic's stop reasons.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
# Error types of stream `error` events, as the HTTP statuses Anthropic uses for them.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
_NOT_SENT = ("messages", "stream", "stream_options")


def _usage(raw: Mapping[str, Any]) -> dict[str, Any]:
    # LiteLLM counts cache reads and writes into prompt_tokens, and reports them apart too.
    created = raw.get("cache_creation_input_tokens") or 0
    read = raw.get("cache_read_input_tokens") or 0
    prompt = (raw.get("input_tokens") or 0) + created + read
    completion_tokens = raw.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": read},
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": read,
    }


def _json_content(arguments: Mapping[str, Any]) -> str:
    # LiteLLM unwraps a `values` wrapper some models put around the forced tool's input.
    values = arguments.get("values")
    return json.dumps(values if values is not None else dict(arguments))


class AnthropicTransform:
    """Requests out, answers in; one per transport (LiteLLM's config object holds no request
    state, only class-level defaults)."""

    def __init__(self) -> None:
        self._config = AnthropicConfig()

    def prepare(self, model: str, base: str, key: str, params: Mapping[str, Any]) -> Prepared:
        non_default = {k: v for k, v in params.items() if k not in _NOT_SENT and v is not None}
        optional = self._config.map_openai_params(non_default, {}, model, drop_params=True)
        beta: dict[str, Any] = {}
        # LiteLLM's transform may rewrite messages in place; the caller retries with them.
        messages = copy.deepcopy(params["messages"])
        data = self._config.transform_request(model, messages, optional, {}, beta)
        json_mode = bool(data.pop("json_mode", False))
        stream = bool(params.get("stream"))
        if stream:
            data["stream"] = True
        headers = {
            "x-api-key": key,
            "anthropic-version": _VERSION,
            "content-type": "application/json",
            "accept": "application/json",
        }
        if beta.get("anthropic-beta"):
            beta, data = update_request_with_filtered_beta(beta, data, "anthropic")
            if beta.get("anthropic-beta"):
                headers["anthropic-beta"] = str(beta["anthropic-beta"])
        options = params.get("stream_options")
        root = base.rstrip("/")
        return Prepared(
            url=root if root.endswith("/v1/messages") else f"{root}/v1/messages",
            headers=headers,
            body=orjson.dumps(data),
            model=model,
            include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
            json_mode=json_mode,
        )

    @staticmethod
    def response(data: dict[str, Any], prepared: Prepared) -> dict[str, Any]:
        text = ""
        calls: list[dict[str, Any]] = []
        for block in data.get("content") or ():
            kind = block.get("type")
            if kind == "text":
                text += block.get("text") or ""
            elif kind == "tool_use":
                arguments = json.dumps(block.get("input") or {})
                function = {"name": block.get("name"), "arguments": arguments}
                calls.append({"id": block.get("id"), "type": "function", "function": function})
        stop = data.get("stop_reason") or "end_turn"
        forced = [c for c in calls if c["function"]["name"] == RESPONSE_FORMAT_TOOL_NAME]
        if prepared.json_mode and forced:
            content = _json_content(json.loads(forced[0]["function"]["arguments"]))
            calls = [c for c in calls if c["function"]["name"] != RESPONSE_FORMAT_TOOL_NAME]
            if calls:
                text += content
            else:
                # Only the forced tool ran: its input is the answer, finished normally.
                text, stop = content, "end_turn"
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        finish = _FINISH.get(stop, "stop")
        ident = data.get("id") or "msg"
        model = data.get("model") or prepared.model
        return completion(ident, model, message, finish, _usage(data.get("usage") or {}))


class AnthropicStream:
    """Anthropic's stream events to OpenAI chunks, one event at a time."""

    def __init__(self, prepared: Prepared) -> None:
        self._prepared = prepared
        self._id = "msg"
        self._model = prepared.model
        self._usage: dict[str, Any] = {}
        # Content-block index -> OpenAI tool-call index, or -1 for the forced JSON tool
        # whose arguments stream as content.
        self._blocks: dict[int, int] = {}
        self._tools = 0
        self._finish: str | None = None
        self._role_sent = False

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        if not self._role_sent:
            self._role_sent = True
            delta = {"role": "assistant", **delta}
        return chunk(self._id, self._model, delta)

    def feed(self, event: Any) -> list[dict[str, Any]]:  # noqa: PLR0911 - one per event type
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            slot = self._blocks.get(int(event.get("index", 0)))
            if delta.get("type") == "text_delta":
                return [self._delta({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta" and slot is not None:
                partial = delta.get("partial_json", "")
                if slot < 0:
                    return [self._delta({"content": partial})]
                call = {"index": slot, "function": {"arguments": partial}}
                return [self._delta({"content": None, "tool_calls": [call]})]
            return []
        if kind == "content_block_start":
            return self._start(int(event.get("index", 0)), event.get("content_block") or {})
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = message.get("id") or self._id
            self._model = message.get("model") or self._model
            self._usage = dict(message.get("usage") or {})
            return []
        if kind == "message_delta":
            stop = (event.get("delta") or {}).get("stop_reason")
            if stop is not None:
                self._finish = _FINISH.get(stop, "stop")
            self._usage.update(event.get("usage") or {})
            return []
        if kind == "message_stop":
            return self.close()
        if kind == "error":
            error = event.get("error") or {}
            status = _ERROR_STATUS.get(str(error.get("type")), 500)
            raise StreamError(status, orjson.dumps(event))
        return []

    def _start(self, index: int, block: Mapping[str, Any]) -> list[dict[str, Any]]:
        if block.get("type") == "text" and block.get("text"):
            return [self._delta({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        if self._prepared.json_mode and block.get("name") == RESPONSE_FORMAT_TOOL_NAME:
            self._blocks[index] = -1
            return []
        self._blocks[index] = self._tools
        call = {
            "index": self._tools,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        self._tools += 1
        return [self._delta({"content": None, "tool_calls": [call]})]

    def close(self) -> list[dict[str, Any]]:
        if self._finish is None and not self._usage:
            return []
        finish = self._finish or "stop"
        if finish == "tool_calls" and self._tools == 0 and -1 in self._blocks.values():
            finish = "stop"  # only the forced JSON tool ran: its input was the answer
        out = [chunk(self._id, self._model, {}, finish)]
        if self._prepared.include_usage:
            out.append(chunk(self._id, self._model, None, usage=_usage(self._usage)))
        self._finish, self._usage = None, {}
        return out
