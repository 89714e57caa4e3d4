"""Anthropic Messages emulator: ``create_app(settings)`` returns a Starlette app."""

from emulators.anthropic.app import create_app
from emulators.anthropic.wire import MAX_IMAGES
from emulators.http.runtime import EmulatorSettings

__all__ = ["MAX_IMAGES", "EmulatorSettings", "create_app"]
