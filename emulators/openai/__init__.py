"""OpenAI Chat Completions emulator: ``create_app(settings)`` returns a Starlette app."""

from emulators.http.runtime import EmulatorSettings
from emulators.openai.app import DEFAULT_MODELS, create_app

__all__ = ["DEFAULT_MODELS", "EmulatorSettings", "create_app"]
