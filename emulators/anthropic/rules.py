"""What the Anthropic Messages API refuses, with its own wording.

Why it exists: a request that the emulator answers but Anthropic refuses would let a test
pass where production fails, so the checks the real API applies before it bills anything
(unknown fields, parameter ranges, block types, images, tool_use / tool_result pairing, the
context window) are repeated here. Every check raises ``ValidationFailure``, answered as
``{"type": "error", "error": {"type": "invalid_request_error", "message": ...}}``.
Messages follow the real API's (``<path>: <complaint>`` with dotted paths).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from emulators.http.checks import (
    ValidationFailure,
    by_model,
    decode_base64,
    inspect_image,
    is_number,
)
from emulators.http.content import Conversation, prompt_tokens

__all__ = [
    "CONTEXT_WINDOWS",
    "MAX_IMAGES",
    "MAX_OUTPUT_TOKENS",
    "check_context",
    "check_request",
]

# Top-level fields of POST /v1/messages, stable and beta (anthropic SDK MessageCreateParams,
# plus the sampling fields older models take); anything else is "Extra inputs are not permitted".
_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
        "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
        "container", "mcp_servers", "context_management", "output_format", "output_config",
        "cache_control", "inference_geo", "speed", "betas", "diagnostics", "user_profile_id",
        "workspace_id", "billing_policy", "compaction", "fallback_credit_token", "fallbacks",
        "thread",
    }
)  # fmt: skip
_BLOCKS = (
    "text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use",
    "tool_result", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
    "code_execution_tool_result", "mcp_tool_use", "mcp_tool_result", "container_upload",
)  # fmt: skip
_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_CHOICES = ("auto", "any", "tool", "none")
_THINKING = ("disabled", "enabled", "adaptive")

# The API's limits (docs: vision, models overview). Per request at most MAX_IMAGES images;
# past _MANY_IMAGES each must fit _MANY_IMAGES_SIDE pixels a side instead of _MAX_SIDE.
MAX_IMAGES = 100
_MANY_IMAGES = 20
_MAX_SIDE = 8000
_MANY_IMAGES_SIDE = 2000
# The limit applies to the base64 text as sent, not the decoded bytes.
_MAX_IMAGE_BYTES = 5 * 1024 * 1024

MAX_OUTPUT_TOKENS = {
    "claude-opus-4-5": 64000,
    "claude-opus-4": 32000,
    "claude-sonnet-4": 64000,
    "claude-haiku-4": 64000,
    "claude-3-7-sonnet": 64000,
    "claude-3-5-sonnet": 8192,
    "claude-3-5-haiku": 8192,
    "claude-3": 4096,
}
# Unknown names (test fixtures) get room rather than a refusal the real API would not give.
_DEFAULT_OUTPUT_TOKENS = 128000
CONTEXT_WINDOWS = {"claude": 200_000}
_DEFAULT_CONTEXT = 200_000
_LONG_CONTEXT = 1_000_000
_LONG_CONTEXT_BETA = "context-1m"
_LONG_CONTEXT_MODELS = ("claude-sonnet-4",)


def _tag_error(path: str, tag: object, expected: Sequence[str]) -> ValidationFailure:
    names = ", ".join(f"'{name}'" for name in expected)
    return ValidationFailure(
        f"{path}: Input tag '{tag}' found using 'type' does not match any of the expected "
        f"tags: {names}"
    )


def check_request(body: Mapping[str, Any]) -> None:
    """Raise ValidationFailure for the first thing in ``body`` the real API refuses."""
    for name in body:
        if name not in _FIELDS:
            raise ValidationFailure(f"{name}: Extra inputs are not permitted")
    _check_sampling(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValidationFailure("messages: at least one message is required")
    for index, message in enumerate(messages):
        _check_message(message, index)
    _check_images(messages)
    _check_tool_turns(messages)
    _check_tools(body)


def _check_sampling(body: Mapping[str, Any]) -> None:
    model = str(body.get("model") or "")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise ValidationFailure("max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise ValidationFailure("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise ValidationFailure("max_tokens: Input should be greater than or equal to 1")
    cap = by_model(model, MAX_OUTPUT_TOKENS, _DEFAULT_OUTPUT_TOKENS)
    if max_tokens > cap:
        raise ValidationFailure(
            f"max_tokens: {max_tokens} > {cap}, which is the maximum allowed number of output "
            f"tokens for {model}"
        )
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if not is_number(value):
            raise ValidationFailure(f"{name}: Input should be a valid number")
        if not 0 <= value <= 1:
            raise ValidationFailure(f"{name}: range: 0..1")
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
        raise ValidationFailure("top_k: Input should be a valid integer")
    if isinstance(top_k, int) and top_k < 0:
        raise ValidationFailure("top_k: Input should be greater than or equal to 0")
    _check_thinking(body.get("thinking"), max_tokens, body.get("temperature"))


def _check_thinking(thinking: Any, max_tokens: int, temperature: Any) -> None:
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind not in _THINKING:
        raise _tag_error("thinking", kind, _THINKING)
    if kind != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise ValidationFailure("thinking.enabled.budget_tokens: Field required")
    if budget < 1024:
        raise ValidationFailure(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    if budget >= max_tokens:
        raise ValidationFailure("`max_tokens` must be greater than `thinking.budget_tokens`")
    if temperature is not None and temperature != 1:
        raise ValidationFailure("`temperature` may only be set to 1 when thinking is enabled")


def _check_message(message: Any, index: int) -> None:
    role = message.get("role") if isinstance(message, Mapping) else None
    if role == "system":
        raise ValidationFailure(
            'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
            'parameter, not "system" as an input message role.'
        )
    if role not in ("user", "assistant"):
        raise ValidationFailure(f"messages.{index}.role: Input should be 'user' or 'assistant'")
    content = message.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise ValidationFailure(f"messages.{index}.content: Input should be a valid list")
    for position, block in enumerate(content):
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind not in _BLOCKS:
            raise _tag_error(f"messages.{index}.content.{position}", kind, _BLOCKS)


def _image_blocks(messages: list[Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(path, block) of every image, those inside tool results included, in request order."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    for i, message in enumerate(messages):
        content = message.get("content")
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if block.get("type") == "image":
                found.append((f"messages.{i}.content.{j}", block))
            inner = block.get("content") if block.get("type") == "tool_result" else None
            for k, part in enumerate(inner if isinstance(inner, list) else ()):
                if isinstance(part, Mapping) and part.get("type") == "image":
                    found.append((f"messages.{i}.content.{j}.content.{k}", part))
    return found


def _check_images(messages: list[Any]) -> None:
    images = _image_blocks(messages)
    if len(images) > MAX_IMAGES:
        raise ValidationFailure(f"Too much media: 0 document pages + {len(images)} images > 100")
    side = _MANY_IMAGES_SIDE if len(images) > _MANY_IMAGES else _MAX_SIDE
    for path, block in images:
        _check_image(path, block.get("source"), side)


def _check_image(path: str, source: Any, side: int) -> None:
    kind = source.get("type") if isinstance(source, Mapping) else None
    if kind not in ("base64", "url", "file"):
        raise _tag_error(f"{path}.image.source", kind, ("base64", "url", "file"))
    if kind != "base64":
        return  # the emulator cannot fetch URLs or uploaded files; the real API would
    assert isinstance(source, Mapping)
    where = f"{path}.image.source.base64"
    media_type = source.get("media_type")
    if media_type not in _MEDIA_TYPES:
        raise ValidationFailure(
            f"{where}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or "
            "'image/webp'"
        )
    text = source.get("data")
    if not isinstance(text, str) or not text:
        raise ValidationFailure(f"{where}.data: Field required")
    if len(text) > _MAX_IMAGE_BYTES:
        raise ValidationFailure(
            f"{where}: image exceeds 5 MB maximum: {len(text)} bytes > {_MAX_IMAGE_BYTES} bytes"
        )
    data = decode_base64(text)
    if data is None:
        raise ValidationFailure(f"{where}.data: invalid base64 data")
    info = inspect_image(data)
    if info is None:
        raise ValidationFailure("Could not process image")
    if info.mime_type != media_type:
        raise ValidationFailure(
            f"{where}.data: The image was specified using the {media_type} media type, but the "
            f"image appears to be a {info.mime_type} image"
        )
    if max(info.width, info.height) > side:
        many = " for many-image requests" if side == _MANY_IMAGES_SIDE else ""
        raise ValidationFailure(
            f"{where}.data: At least one of the image dimensions exceed max allowed size{many}: "
            f"{side} pixels"
        )


def _ids(message: Any, kind: str, key: str) -> list[tuple[int, str]]:
    content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, list):
        return []
    return [(j, str(b.get(key))) for j, b in enumerate(content) if b.get("type") == kind]


def _check_tool_turns(messages: list[Any]) -> None:
    """Each tool_use is answered in the next message; each tool_result answers the previous."""
    for i, message in enumerate(messages):
        previous = messages[i - 1] if i > 0 else {}
        asked = {c for _, c in _ids(previous, "tool_use", "id")}
        if previous.get("role") != "assistant":
            asked = set()
        for j, result_id in _ids(message, "tool_result", "tool_use_id"):
            if result_id not in asked:
                raise ValidationFailure(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {result_id}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        # A trailing tool_use (the client is about to run it) has no next message to check.
        if message.get("role") != "assistant" or i + 1 == len(messages):
            continue
        answered = {r for _, r in _ids(messages[i + 1], "tool_result", "tool_use_id")}
        missing = [c for _, c in _ids(message, "tool_use", "id") if c not in answered]
        if missing:
            raise ValidationFailure(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )


def _check_tools(body: Mapping[str, Any]) -> None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise ValidationFailure("tools: Input should be a valid list")
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise ValidationFailure(f"tools.{index}: Input should be a valid dictionary")
        # Server tools (web_search_..., code_execution_...) carry a dated type, no schema.
        if tool.get("type") in (None, "custom") and not isinstance(
            tool.get("input_schema"), Mapping
        ):
            raise ValidationFailure(f"tools.{index}.custom.input_schema: Field required")
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind not in _TOOL_CHOICES:
        raise _tag_error("tool_choice", kind, _TOOL_CHOICES)
    assert isinstance(choice, Mapping)
    if kind == "tool" and not choice.get("name"):
        raise ValidationFailure("tool_choice.tool.name: Field required")


def check_context(conv: Conversation, beta_header: str) -> None:
    """Refuse a prompt (plus ``max_tokens``) longer than the model's context window."""
    window = by_model(conv.model, CONTEXT_WINDOWS, _DEFAULT_CONTEXT)
    if _LONG_CONTEXT_BETA in beta_header and conv.model.startswith(_LONG_CONTEXT_MODELS):
        window = _LONG_CONTEXT
    tokens = prompt_tokens(conv)
    if tokens > window:
        raise ValidationFailure(f"prompt is too long: {tokens} tokens > {window} maximum")
    wanted = conv.max_tokens or 0
    if tokens + wanted > window:
        raise ValidationFailure(
            f"input length and `max_tokens` exceed context limit: {tokens} + {wanted} > "
            f"{window}, decrease input length or `max_tokens` and try again"
        )
