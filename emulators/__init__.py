"""Local stand-ins for the gateway's upstreams: provider HTTP emulators and a Kafka broker.

The HTTP emulators speak the real wire formats of Anthropic Messages (``emulators.anthropic``),
OpenAI Chat Completions (``emulators.openai``), Gemini generateContent (``emulators.gemini``),
Fal's queue protocol (``emulators.fal``) and Vertex AI's Gemini image work, virtual try-on and
service-account OAuth (``emulators.vertex``), answer deterministically and fail on demand
(``emulators.http.faults``). Like the real APIs they refuse bad requests (parameter ranges,
unknown fields and enum values, undecodable or oversized images, too many images, prompts over
the context window, unpaired tool turns) with each provider's own status and error body
(``rules`` in each provider's package, shared checks in ``emulators.http.checks``).
``start_emulator("openai")`` runs one on a free port; ``python -m emulators all`` runs them all;
``emulators.testing`` provides pytest fixtures. The Kafka broker lives in ``emulators.kafka``.
"""

from __future__ import annotations

import importlib
from typing import Literal, get_args

from starlette.applications import Starlette

from emulators.http.errors import EmulatorError, EmulatorServerError
from emulators.http.runtime import EmulatorSettings
from emulators.http.server import EmulatorServer

__all__ = [
    "PROVIDERS",
    "EmulatorError",
    "EmulatorServer",
    "EmulatorServerError",
    "EmulatorSettings",
    "ProviderName",
    "create_emulator_app",
    "start_emulator",
]

ProviderName = Literal["anthropic", "openai", "gemini", "fal", "vertex"]
PROVIDERS: tuple[ProviderName, ...] = get_args(ProviderName)


def create_emulator_app(name: str, settings: EmulatorSettings | None = None) -> Starlette:
    """The Starlette app of the provider emulator called ``name``."""
    if name not in PROVIDERS:
        raise ValueError(f"unknown emulator {name!r}; choose one of {', '.join(PROVIDERS)}")
    # Imported on demand so that using one emulator (or the Kafka one) loads only what it needs.
    module = importlib.import_module(f"emulators.{name}")
    app: Starlette = module.create_app(settings)
    return app


def start_emulator(
    name: str,
    port: int = 0,
    host: str = "127.0.0.1",
    settings: EmulatorSettings | None = None,
    *,
    tls: tuple[str, str] | None = None,
) -> EmulatorServer:
    """Start the ``name`` emulator in a background thread; call ``.stop()`` when done.

    ``tls`` (certificate chain file, key file) serves HTTPS, as fal-client's submit requires.
    """
    server = EmulatorServer(create_emulator_app(name, settings), host=host, port=port, tls=tls)
    server.start()
    return server
