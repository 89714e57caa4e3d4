"""Parse a Gemini generateContent request body into a provider-neutral Conversation.

Why it exists: Gemini's request shape (contents/parts, ``systemInstruction``,
``generationConfig`` with an OpenAPI-subset ``responseSchema``, ``functionDeclarations``,
``safetySettings``) is absorbed by one pure function with no I/O, shared by the Google AI and
Vertex AI routes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from emulators.http.content import Conversation, ToolSpec
from emulators.http.errors import BadRequestBody

__all__ = ["SAFETY_CATEGORIES", "SAFETY_THRESHOLDS", "BadRequestBody", "parse_request"]

SAFETY_THRESHOLDS = frozenset(
    {
        "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
        "BLOCK_LOW_AND_ABOVE",
        "BLOCK_MEDIUM_AND_ABOVE",
        "BLOCK_ONLY_HIGH",
        "BLOCK_NONE",
        "OFF",
    }
)
SAFETY_CATEGORIES = frozenset(
    {
        "HARM_CATEGORY_UNSPECIFIED",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_CIVIC_INTEGRITY",
    }
)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _f(mapping: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Field ``name`` in lowerCamel or snake_case: the API's JSON parser accepts both."""
    if name in mapping:
        return mapping[name]
    return mapping.get(_snake(name), default)


def _has(mapping: Mapping[str, Any], name: str) -> bool:
    return name in mapping or _snake(name) in mapping


def _parts(content: Any, index: int) -> tuple[list[str], int, list[str]]:
    """(texts, images, function-response texts) of one Content."""
    if not isinstance(content, Mapping) or not isinstance(content.get("parts"), list):
        raise BadRequestBody(f"contents[{index}].parts: must be a list")
    texts: list[str] = []
    results: list[str] = []
    images = 0
    for part in content["parts"]:
        if not isinstance(part, Mapping):
            raise BadRequestBody(f"contents[{index}].parts: each part must be an object")
        if "text" in part:
            texts.append(str(part["text"]))
        elif _has(part, "inlineData"):
            if not (_f(part, "inlineData") or {}).get("data"):
                raise BadRequestBody(f"contents[{index}].parts.inlineData: data is required")
            images += 1
        elif _has(part, "fileData"):
            images += 1
        elif _has(part, "functionCall"):
            texts.append(json.dumps(_f(part, "functionCall").get("args", {})))
        elif _has(part, "functionResponse"):
            results.append(json.dumps(_f(part, "functionResponse").get("response", {})))
    return texts, images, results


def _tools(body: Mapping[str, Any]) -> tuple[ToolSpec, ...]:
    specs = []
    for tool in body.get("tools") or []:
        for fn in _f(tool, "functionDeclarations") or []:
            if not fn.get("name"):
                raise BadRequestBody("tools.functionDeclarations.name: is required")
            schema = fn.get("parameters") or _f(fn, "parametersJsonSchema") or {}
            specs.append(ToolSpec(fn["name"], fn.get("description", ""), schema))
    return tuple(specs)


def _tool_choice(body: Mapping[str, Any]) -> str:
    config = _f(_f(body, "toolConfig") or {}, "functionCallingConfig") or {}
    mode = str(config.get("mode", "AUTO")).upper()
    if mode == "NONE":
        return "none"
    allowed = _f(config, "allowedFunctionNames") or []
    if mode == "ANY":
        return str(allowed[0]) if allowed else "required"
    return "auto"


def _check_safety(body: Mapping[str, Any]) -> None:
    for setting in _f(body, "safetySettings") or []:
        if setting.get("category") not in SAFETY_CATEGORIES:
            raise BadRequestBody(f"safetySettings: invalid category {setting.get('category')!r}")
        if setting.get("threshold") not in SAFETY_THRESHOLDS:
            raise BadRequestBody(f"safetySettings: invalid threshold {setting.get('threshold')!r}")


def parse_request(model: str, body: Mapping[str, Any]) -> Conversation:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequestBody("contents is not specified")
    _check_safety(body)
    system_parts = (_f(body, "systemInstruction") or {}).get("parts") or []
    texts = [str(p.get("text", "")) for p in system_parts if "text" in p]
    images = 0
    last_user = ""
    last_results: list[str] = []
    for index, content in enumerate(contents):
        parts, count, results = _parts(content, index)
        texts.extend(parts)
        texts.extend(results)
        images += count
        if content.get("role", "user") == "user" and parts:
            last_user = "\n".join(parts)
        last_results = results or last_results
    _, _, final_results = _parts(contents[-1], len(contents) - 1)
    config = _f(body, "generationConfig") or {}
    schema = _f(config, "responseSchema") or _f(config, "responseJsonSchema")
    is_json = _f(config, "responseMimeType") == "application/json"
    max_tokens = _f(config, "maxOutputTokens")
    modalities = [str(m).upper() for m in _f(config, "responseModalities") or ()]
    return Conversation(
        provider="gemini",
        model=model,
        texts=tuple(texts),
        last_user_text=last_user,
        image_count=images,
        tools=_tools(body),
        tool_choice=_tool_choice(body),
        after_tool_result=bool(final_results),
        tool_result_text="\n".join(last_results),
        json_schema=schema if is_json and schema else None,
        json_mode=is_json and not schema,
        max_tokens=int(max_tokens) if max_tokens else None,
        stop=tuple(str(s) for s in _f(config, "stopSequences") or ()),
        wants_image="IMAGE" in modalities,
    )
