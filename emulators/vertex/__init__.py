"""Vertex AI emulator: Gemini generateContent with image output, virtual try-on ``:predict``,
and the OAuth token endpoint for service-account assertions. ``create_app(settings)`` returns
a Starlette app; block markers are described in ``emulators.vertex.safety``, the control API in
``emulators.vertex.control``, the per-call records in ``emulators.vertex.calls``."""

from emulators.http.runtime import EmulatorSettings
from emulators.vertex.app import create_app
from emulators.vertex.runtime import VertexRuntime
from emulators.vertex.tokens import GRANT_TYPE, TOKEN_AUDIENCES, new_service_account
from emulators.vertex.wire import TRY_ON_MODELS

__all__ = [
    "GRANT_TYPE",
    "TOKEN_AUDIENCES",
    "TRY_ON_MODELS",
    "EmulatorSettings",
    "VertexRuntime",
    "create_app",
    "new_service_account",
]
