"""Fal.ai queue emulator: ``create_app(settings)`` returns a Starlette app."""

from emulators.fal.app import FalRuntime, create_app
from emulators.fal.queue import QueueTimings
from emulators.http.runtime import EmulatorSettings

__all__ = ["EmulatorSettings", "FalRuntime", "QueueTimings", "create_app"]
