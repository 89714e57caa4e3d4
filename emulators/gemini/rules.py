"""What Gemini generateContent refuses, with Google's wording.

Why it exists: a request that the emulator answers but Gemini refuses would let a test pass
where production fails, so the checks the real API applies before generating (roles, parts,
enum values, generationConfig ranges, images, function-call turns, the context window) are
repeated here. Every check raises ``ValidationFailure``, answered as
``{"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT"}}``. Both field
spellings (``generationConfig`` / ``generation_config``) are read, as Google's parser takes both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
    "MAX_BODY_BYTES",
    "MAX_IMAGES",
    "candidate_count",
    "check_context",
    "check_request",
]

_PROTO = "type.googleapis.com/google.ai.generativelanguage.v1beta"
_ROLES = ("user", "model", "function")
_PART_DATA = (
    "text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
    "codeExecutionResult", "thought",
)  # fmt: skip
_MODES = ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED")
_MODALITIES = ("MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO")
_MIME_TYPES = (
    "text/plain",
    "application/json",
    "application/xml",
    "application/yaml",
    "text/x.enum",
)
# Inclusive low, exclusive high, as the API words its ranges.
_RANGES: dict[str, tuple[float, str]] = {
    "temperature": (0, "2.0001"),
    "topP": (0, "1.0000001"),
}
_MAX_CANDIDATES = 8
MAX_IMAGES = 3600
# A request body (inline data included) may be at most 20 MB; larger files go via the File API.
MAX_BODY_BYTES = 20 * 1024 * 1024
CONTEXT_WINDOWS = {"gemini": 1_048_576}
_DEFAULT_CONTEXT = 1_048_576
_OUTPUT_TOKENS = {"gemini-2.5": 65_536, "gemini-3": 65_536, "gemini-2.0": 8_192}
_DEFAULT_OUTPUT = 65_536
_UNDECODABLE = (
    "Unable to process input image. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _get(mapping: Any, name: str) -> Any:
    if not isinstance(mapping, Mapping):
        return None
    return mapping[name] if name in mapping else mapping.get(_snake(name))


def _enum_error(where: str, enum: str, value: object) -> ValidationFailure:
    return ValidationFailure(f"Invalid value at '{where}' ({_PROTO}.{enum}), \"{value}\"")


def check_request(model: str, body: Mapping[str, Any]) -> None:
    """Raise ValidationFailure for the first thing in ``body`` the real API refuses."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ValidationFailure("* GenerateContentRequest.contents: contents is not specified\n")
    images = 0
    for i, content in enumerate(contents):
        role = _get(content, "role")
        if role is not None and role not in _ROLES:
            raise ValidationFailure("Please use a valid role: user, model.")
        parts = _get(content, "parts")
        if not isinstance(parts, list) or not parts:
            raise ValidationFailure(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            )
        for j, part in enumerate(parts):
            images += _check_part(part, f"contents[{i}].parts[{j}]")
    if images > MAX_IMAGES:
        raise ValidationFailure(
            f"The request has {images} images, more than the {MAX_IMAGES} images a request "
            "may contain."
        )
    _check_turns(contents)
    _check_config(model, _get(body, "generationConfig"))
    mode = _get(_get(_get(body, "toolConfig"), "functionCallingConfig"), "mode")
    if mode is not None and mode not in _MODES:
        where = "tool_config.function_calling_config.mode"
        raise _enum_error(where, "FunctionCallingConfig.Mode", mode)


def _check_part(part: Any, where: str) -> int:
    """1 for an inline image part (checked), else 0; raises on an empty or bad part."""
    if not any(_get(part, name) is not None for name in _PART_DATA):
        raise ValidationFailure(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
            "initialized field\n"
        )
    inline = _get(part, "inlineData")
    if inline is None:
        files = _get(part, "fileData")
        return 1 if str(_get(files, "mimeType") or "").startswith("image/") else 0
    mime = str(_get(inline, "mimeType") or "")
    text = _get(inline, "data")
    data = decode_base64(text)
    if data is None:
        raise ValidationFailure(
            f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed "
            f'for "{str(text)[:20]}"'
        )
    if not mime.startswith("image/"):
        return 0  # documents, audio and video are not decoded here
    if inspect_image(data) is None:
        raise ValidationFailure(_UNDECODABLE)
    return 1


def _kinds(content: Any) -> tuple[int, int]:
    """(functionCall parts, functionResponse parts) of one Content."""
    parts = _get(content, "parts") or []
    calls = sum(_get(p, "functionCall") is not None for p in parts)
    answers = sum(_get(p, "functionResponse") is not None for p in parts)
    return calls, answers


def _check_turns(contents: list[Any]) -> None:
    """Function responses follow a function-call turn one for one; calls follow a user turn."""
    previous: Any = None
    for content in contents:
        calls, answers = _kinds(content)
        before_calls, before_answers = _kinds(previous) if previous is not None else (0, 0)
        if answers and not before_calls:
            raise ValidationFailure(
                "Please ensure that function response turn comes immediately after a function "
                "call turn."
            )
        if answers and answers != before_calls:
            raise ValidationFailure(
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        after_user = previous is None or _get(previous, "role") in (None, "user", "function")
        if calls and (previous is None or not (after_user or before_answers)):
            raise ValidationFailure(
                "Please ensure that function call turn comes immediately after a user turn or "
                "after a function response turn."
            )
        previous = content


def _check_config(model: str, config: Any) -> None:
    if config is None:
        return
    for name, (low, high) in _RANGES.items():
        value = _get(config, name)
        if value is None:
            continue
        if not is_number(value) or not low <= value < float(high):
            raise ValidationFailure(
                f"Unable to submit request because it has a {name} value of {value} but the "
                f"supported range is from {low} (inclusive) to {high} (exclusive). Update the "
                "value and try again."
            )
    count = _get(config, "candidateCount")
    if count is not None and (not isinstance(count, int) or not 1 <= count <= _MAX_CANDIDATES):
        raise ValidationFailure(
            f"Unable to submit request because candidateCount must be between 1 and "
            f"{_MAX_CANDIDATES} but the entered value was {count}."
        )
    most = by_model(model, _OUTPUT_TOKENS, _DEFAULT_OUTPUT)
    tokens = _get(config, "maxOutputTokens")
    if tokens is not None and (not isinstance(tokens, int) or not 1 <= tokens <= most):
        raise ValidationFailure(
            f"Unable to submit request because it has a maxOutputTokens value of {tokens} but "
            f"the supported range is from 1 (inclusive) to {most + 1} (exclusive). Update the "
            "value and try again."
        )
    mime = _get(config, "responseMimeType")
    if mime is not None and mime not in _MIME_TYPES:
        raise ValidationFailure(
            "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes "
            "are `text/plain`, `application/json`, `application/xml`, `application/yaml` and "
            "`text/x.enum`.\n"
        )
    for index, modality in enumerate(_get(config, "responseModalities") or ()):
        if str(modality).upper() not in _MODALITIES:
            where = f"generation_config.response_modalities[{index}]"
            raise _enum_error(where, "GenerationConfig.Modality", modality)


def check_context(conv: Conversation) -> None:
    """Refuse a prompt longer than the model's input window."""
    window = by_model(conv.model, CONTEXT_WINDOWS, _DEFAULT_CONTEXT)
    tokens = prompt_tokens(conv)
    if tokens > window:
        raise ValidationFailure(
            f"The input token count ({tokens}) exceeds the maximum number of tokens allowed "
            f"({window})."
        )


def candidate_count(body: Mapping[str, Any]) -> int:
    """How many candidates a checked request asks for (1 unless candidateCount says more)."""
    count = _get(_get(body, "generationConfig"), "candidateCount")
    return count if isinstance(count, int) and count > 0 else 1
