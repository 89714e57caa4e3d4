"""Gemini generateContent emulator (Google AI and Vertex AI paths)."""

from emulators.gemini.app import create_app
from emulators.gemini.wire import SAFETY_CATEGORIES, SAFETY_THRESHOLDS
from emulators.http.runtime import EmulatorSettings

__all__ = ["SAFETY_CATEGORIES", "SAFETY_THRESHOLDS", "EmulatorSettings", "create_app"]
