"""Machinery shared by the provider emulators: server thread, faults, deterministic content."""

from emulators.http.checks import ValidationFailure
from emulators.http.content import (
    Conversation,
    Reply,
    ToolSpec,
    ToolUse,
    chunk_text,
    estimate_tokens,
    plan_reply,
)
from emulators.http.control import build_app, runtime_of
from emulators.http.errors import BadRequestBody, EmulatorError, EmulatorServerError, FaultSpecError
from emulators.http.faults import FAULT_HEADER, FaultSpec, parse_fault
from emulators.http.images import solid_png
from emulators.http.pipeline import ErrorRenderer, guard, sse, sse_response
from emulators.http.runtime import EmulatorRuntime, EmulatorSettings
from emulators.http.schema import generate_instance
from emulators.http.server import EmulatorServer

__all__ = [
    "FAULT_HEADER",
    "BadRequestBody",
    "Conversation",
    "EmulatorError",
    "EmulatorRuntime",
    "EmulatorServer",
    "EmulatorServerError",
    "EmulatorSettings",
    "ErrorRenderer",
    "FaultSpec",
    "FaultSpecError",
    "Reply",
    "ToolSpec",
    "ToolUse",
    "ValidationFailure",
    "build_app",
    "chunk_text",
    "estimate_tokens",
    "generate_instance",
    "guard",
    "parse_fault",
    "plan_reply",
    "runtime_of",
    "solid_png",
    "sse",
    "sse_response",
]
