"""Errors raised by the provider emulators.

Why one root: callers (tests, the CLI) can catch every emulator failure at once, and each
class says whether repeating the same action could succeed.

    EmulatorError                 root; retriable = False
    ├── FaultSpecError            a fault spec breaks the grammar in faults.py
    ├── BadRequestBody            a request body is not valid for the emulated API (-> 400)
    └── EmulatorServerError       the background server could not start or stop
"""

from __future__ import annotations

__all__ = ["BadRequestBody", "EmulatorError", "EmulatorServerError", "FaultSpecError"]


class EmulatorError(Exception):
    """Root of all emulator errors."""

    retriable = False


class FaultSpecError(EmulatorError, ValueError):
    """A fault spec does not follow the grammar in ``emulators.http.faults``."""

    retriable = False


class BadRequestBody(EmulatorError, ValueError):
    """A request body is invalid for the emulated API; answered with that API's 400."""

    retriable = False

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class EmulatorServerError(EmulatorError, RuntimeError):
    """The emulator server could not start or stop (a port in use, a stuck thread)."""

    # A port clash or a slow start may clear on a second attempt.
    retriable = True
