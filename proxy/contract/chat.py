"""The chat-completion rules OpenAI enforces that its schema cannot express.

Why it exists: the schema checks each message alone; OpenAI also refuses conversations whose
messages disagree with each other, and so do the providers behind the gateway (Anthropic
refuses a `tool_result` with no matching `tool_use`): a tool message must answer a tool call of
the assistant message before it, every tool call must be answered before the conversation goes
on, `tool_choice` must name a declared tool, and a few fields only make sense together. Run
after the schema check, so every value here already has its documented shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from proxy.errors import InvalidRequestError

__all__ = ["check_chat_rules"]

# OpenAI's documented rule for function and response-format names.
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_NAME_RULE = "must be 1 to 64 characters: letters, digits, underscores or dashes"


def _short(call_id: str) -> str:
    # Ids are the caller's text: named to help, cut so that an error never carries much of it.
    return repr(call_id if len(call_id) <= 40 else call_id[:40] + "...")


def _refuse(param: str, rule: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid '{param}': {rule}.", param=param)


def _tool_names(tools: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Declared tool name -> its type (`function` or `custom`)."""
    names: dict[str, str] = {}
    for index, tool in enumerate(tools):
        kind = tool["type"]
        name = tool[kind]["name"]
        if not _NAME.match(name):
            raise _refuse(f"tools[{index}].{kind}.name", _NAME_RULE)
        if name in names:
            raise _refuse(f"tools[{index}].{kind}.name", "names a tool declared before it")
        names[name] = kind
    return names


def _check_tool_choice(request: Mapping[str, Any], declared: Mapping[str, str]) -> None:
    choice = request.get("tool_choice")
    if choice is None or choice in ("none", "auto"):
        return
    if not declared:
        raise _refuse("tool_choice", "is only allowed when 'tools' are specified")
    if not isinstance(choice, dict):
        return  # "required": any declared tool will do
    kind = choice["type"]
    if kind == "allowed_tools":
        for index, tool in enumerate(choice["allowed_tools"].get("tools") or ()):
            inner = tool.get(tool.get("type", "function")) if isinstance(tool, dict) else None
            name = inner.get("name") if isinstance(inner, dict) else None
            if name not in declared:
                raise _refuse(
                    f"tool_choice.allowed_tools.tools[{index}]", "names no tool in 'tools'"
                )
        return
    if declared.get(choice[kind]["name"]) != kind:
        raise _refuse(f"tool_choice.{kind}.name", f"names no {kind} tool in 'tools'")


def _check_conversation(messages: Sequence[Mapping[str, Any]]) -> None:
    """Each tool message answers a call of the assistant message before it, once; every call
    is answered before any other message follows."""
    pending: dict[str, None] = {}  # ordered: the first unanswered call is named
    asked_at = -1
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            call_id = message["tool_call_id"]
            if call_id not in pending:
                raise _refuse(
                    f"messages[{index}].tool_call_id",
                    "answers no tool call of the assistant message before it",
                )
            del pending[call_id]
            continue
        if pending:
            raise _refuse(
                f"messages[{asked_at}].tool_calls",
                f"tool call {_short(next(iter(pending)))} has no tool message answering it "
                f"before messages[{index}]",
            )
        if role == "assistant":
            _check_assistant(index, message)
            calls = message.get("tool_calls") or ()
            for call in calls:
                if call["id"] in pending:
                    raise _refuse(
                        f"messages[{index}].tool_calls", "holds two tool calls with one id"
                    )
                pending[call["id"]] = None
            asked_at = index
    if pending:
        raise _refuse(
            f"messages[{asked_at}].tool_calls",
            f"tool call {_short(next(iter(pending)))} has no tool message answering it",
        )


def _check_assistant(index: int, message: Mapping[str, Any]) -> None:
    answered = ("content", "tool_calls", "function_call", "audio", "refusal")
    if all(message.get(field) is None for field in answered):
        raise _refuse(f"messages[{index}].content", "is required unless 'tool_calls' is set")


def check_chat_rules(request: Mapping[str, Any]) -> None:
    """Raise `InvalidRequestError` naming the field of the first rule `request` breaks."""
    _check_conversation(request["messages"])
    declared = _tool_names(request.get("tools") or ())
    _check_tool_choice(request, declared)
    response_format = request.get("response_format")
    if (
        isinstance(response_format, dict)
        and response_format["type"] == "json_schema"
        and not _NAME.match(response_format["json_schema"]["name"])
    ):
        raise _refuse("response_format.json_schema.name", _NAME_RULE)
    if request.get("top_logprobs") is not None and request.get("logprobs") is not True:
        raise _refuse("top_logprobs", "requires 'logprobs' to be true")
    if request.get("stream_options") is not None and request.get("stream") is not True:
        raise _refuse("stream_options", "is only allowed when 'stream' is true")
