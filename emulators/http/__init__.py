"""Machinery shared by the provider emulators: server thread, faults, deterministic content."""

from emulators.http.content import (
    Conversation,
    Reply,
    ToolCall,
    ToolSpec,
    chunk_text,
    estimate_tokens,
    plan_reply,
)
from emulators.http.control import build_app, runtime_of
from emulators.http.errors import EmulatorError, EmulatorServerError, FaultSpecError, WireError
from emulators.http.faults import FAULT_HEADER, FaultSpec, parse_fault
from emulators.http.images import solid_png
from emulators.http.pipeline import ErrorRenderer, guard, sse, sse_response
from emulators.http.runtime import EmulatorRuntime, EmulatorSettings
from emulators.http.schema import generate_instance
from emulators.http.server import EmulatorServer

__all__ = [
    "FAULT_HEADER",
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
    "ToolCall",
    "ToolSpec",
    "WireError",
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
