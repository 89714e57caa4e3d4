"""What OpenAI Chat Completions refuses, with its own wording, ``param`` and ``code``.

Why it exists: a request that the emulator answers but OpenAI refuses would let a test pass
where production fails, so the checks the real API applies before generating (unknown
arguments, ranges, enum values, images, tool-message order, the context window) are repeated
here. Every check raises ``ValidationFailure``, answered as
``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``.
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
    parse_data_url,
)
from emulators.http.content import Conversation, prompt_tokens

__all__ = ["CONTEXT_WINDOWS", "FIELDS", "MAX_IMAGES", "check_context", "check_request"]

# The create() parameters of the openai SDK (CompletionCreateParams), plus `stream`.
FIELDS = frozenset(
    {
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions",
        "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities",
        "moderation", "n", "parallel_tool_calls", "prediction", "presence_penalty",
        "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning_effort",
        "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
        "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
        "verbosity", "web_search_options",
    }
)  # fmt: skip
_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_PARTS = ("text", "image_url", "input_audio", "refusal", "audio", "file")
_TOOL_CHOICES = ("none", "auto", "required")
_FORMATS = ("json_object", "json_schema", "text")
_DETAILS = ("auto", "low", "high")
_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
# (low, high, is_integer) of each bounded numeric parameter.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "temperature": (0, 2, False),
    "top_p": (0, 1, False),
    "presence_penalty": (-2, 2, False),
    "frequency_penalty": (-2, 2, False),
    "n": (1, 128, True),
    "top_logprobs": (0, 20, True),
}
MAX_IMAGES = 500
_MAX_IMAGE_BYTES = 20 * 1024 * 1024
CONTEXT_WINDOWS = {
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4": 200_000,
}
_DEFAULT_CONTEXT = 128_000
_OUTPUT_TOKENS = {"gpt-4o": 16_384, "gpt-4.1": 32_768, "gpt-4-turbo": 4_096, "gpt-5": 128_000}
_DEFAULT_OUTPUT = 128_000
_JSON_TYPES = {
    str: "a string",
    bool: "a boolean",
    float: "a decimal",
    list: "an array",
    dict: "an object",
}


def _one_of(value: object, allowed: Sequence[str], param: str) -> ValidationFailure:
    names = ", ".join(f"'{v}'" for v in allowed[:-1]) + f", and '{allowed[-1]}'"
    return ValidationFailure(
        f"Invalid value: '{value}'. Supported values are: {names}.", param, "invalid_value"
    )


def _bad_image(message: str = "") -> ValidationFailure:
    formats = ", ".join(f"'{f}'" for f in _IMAGE_FORMATS)
    return ValidationFailure(
        f"You uploaded an unsupported image. Please make sure your image {message}is of one the "
        f"following formats: [{formats}].",
        None,
        "invalid_image_format",
    )


def check_request(body: Mapping[str, Any]) -> None:
    """Raise ValidationFailure for the first thing in ``body`` the real API refuses."""
    for name in body:
        if name not in FIELDS:
            raise ValidationFailure(f"Unrecognized request argument supplied: {name}")
    _check_numbers(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValidationFailure(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            "messages",
            "empty_array",
        )
    images = 0
    for i, message in enumerate(messages):
        images += _check_message(message, i)
    if images > MAX_IMAGES:
        raise ValidationFailure(
            f"Too many images in request. Max is {MAX_IMAGES}.", "messages", "invalid_value"
        )
    _check_tool_turns(messages)
    _check_options(body)


def _check_numbers(body: Mapping[str, Any]) -> None:
    for name, (low, high, integer) in _RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        kind = "an integer" if integer else "a decimal"
        if not is_number(value) or (integer and not isinstance(value, int)):
            got = _JSON_TYPES.get(type(value), "a value")
            raise ValidationFailure(
                f"Invalid type for '{name}': expected {kind}, but got {got} instead.",
                name,
                "invalid_type",
            )
        word = "integer" if integer else "decimal"
        if value > high:
            raise ValidationFailure(
                f"Invalid '{name}': {word} above maximum value. Expected a value <= "
                f"{_num(high)}, but got {value} instead.",
                name,
                f"{word}_above_max_value",
            )
        if value < low:
            raise ValidationFailure(
                f"Invalid '{name}': {word} below minimum value. Expected a value >= "
                f"{_num(low)}, but got {value} instead.",
                name,
                f"{word}_below_min_value",
            )
    model = str(body.get("model") or "")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValidationFailure(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got "
                f"{value} instead.",
                name,
                "integer_below_min_value",
            )
        cap = by_model(model, _OUTPUT_TOKENS, _DEFAULT_OUTPUT)
        if value > cap:
            raise ValidationFailure(
                f"{name} is too large: {value}. This model supports at most {cap} completion "
                f"tokens, whereas you provided {value}.",
                name,
                "invalid_value",
            )


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _check_message(message: Any, i: int) -> int:
    """The number of images in message ``i``; raises on a bad role or content part."""
    if not isinstance(message, Mapping):
        raise ValidationFailure(
            f"Invalid type for 'messages[{i}]': expected an object, but got a "
            f"{type(message).__name__} instead.",
            f"messages[{i}]",
            "invalid_type",
        )
    role = message.get("role")
    if role not in _ROLES:
        raise _one_of(role, _ROLES, f"messages[{i}].role")
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    images = 0
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind not in _PARTS:
            raise _one_of(kind, _PARTS, f"messages[{i}].content[{j}].type")
        if kind == "image_url":
            _check_image(part.get("image_url"), f"messages[{i}].content[{j}].image_url")
            images += 1
    return images


def _check_image(image_url: Any, param: str) -> None:
    url = image_url.get("url") if isinstance(image_url, Mapping) else None
    if not isinstance(url, str) or not url:
        raise ValidationFailure(
            f"Missing required parameter: '{param}.url'.",
            f"{param}.url",
            "missing_required_parameter",
        )
    detail = image_url.get("detail") if isinstance(image_url, Mapping) else None
    if detail is not None and detail not in _DETAILS:
        raise _one_of(detail, _DETAILS, f"{param}.detail")
    if url.startswith(("http://", "https://")):
        return  # fetched by the provider; the emulator cannot, and does not need to
    parsed = parse_data_url(url)
    if parsed is None:
        raise ValidationFailure(
            f"Invalid '{param}.url': Expected a base64-encoded data URL with an image MIME "
            "type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value without "
            "the 'data:' prefix.",
            f"{param}.url",
            "invalid_value",
        )
    data = decode_base64(parsed[1])
    if data is not None and len(data) > _MAX_IMAGE_BYTES:
        raise _bad_image("is below 20 MB in size and ")
    info = inspect_image(data) if data is not None else None
    if info is None or info.format not in _IMAGE_FORMATS:
        raise _bad_image()


def _check_tool_turns(messages: list[Any]) -> None:
    """Tool messages answer the assistant tool_calls right before them, every id of them."""
    asked: set[str] = set()
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise ValidationFailure(
                    "Missing parameter 'tool_call_id': messages with role 'tool' must have a "
                    "'tool_call_id'.",
                    f"messages.[{i}].tool_call_id",
                )
            if not asked:
                raise ValidationFailure(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            if call_id not in asked:
                raise ValidationFailure(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    "'tool_calls' of previous message.",
                    f"messages.[{i}].tool_call_id",
                )
            pending.discard(call_id)
            continue
        if pending:
            raise ValidationFailure(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(pending))}",
                f"messages.[{i}].role",
            )
        calls = message.get("tool_calls") if role == "assistant" else None
        asked = {str(c.get("id")) for c in calls or () if isinstance(c, Mapping)}
        pending = set(asked)


def _check_options(body: Mapping[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is not None and not body.get("tools") and not body.get("functions"):
        raise ValidationFailure(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            "tool_choice",
        )
    if isinstance(choice, str) and choice not in _TOOL_CHOICES:
        raise _one_of(choice, _TOOL_CHOICES, "tool_choice")
    fmt = body.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind not in _FORMATS:
        raise _one_of(kind, _FORMATS, "response_format.type")
    assert isinstance(fmt, Mapping)
    if kind == "json_schema" and not isinstance(fmt.get("json_schema"), Mapping):
        raise ValidationFailure(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        )


def check_context(conv: Conversation) -> None:
    """Refuse a prompt (plus the completion it asks room for) longer than the model's window."""
    window = by_model(conv.model, CONTEXT_WINDOWS, _DEFAULT_CONTEXT)
    tokens = prompt_tokens(conv)
    if tokens > window:
        raise ValidationFailure(
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {tokens} tokens. Please reduce the length of the messages.",
            "messages",
            "context_length_exceeded",
        )
    wanted = conv.max_tokens or 0
    if tokens + wanted > window:
        raise ValidationFailure(
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{tokens + wanted} tokens ({tokens} in the messages, {wanted} in the completion). "
            "Please reduce the length of the messages or completion.",
            "messages",
            "context_length_exceeded",
        )
