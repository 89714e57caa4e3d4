"""Anthropic Messages emulator: ``create_app(settings)`` returns a Starlette app."""

from emulators.anthropic.app import DEFAULT_MODELS, create_app
from emulators.anthropic.rules import MAX_IMAGES
from emulators.http.runtime import EmulatorSettings

__all__ = ["DEFAULT_MODELS", "MAX_IMAGES", "EmulatorSettings", "create_app"]
