"""pytest fixtures for the provider emulators (loaded by tests/conftest.py as a plugin).

Why session scope: starting an emulator costs a thread and a socket, so each provider runs
once per test session; tests isolate themselves through the handle's ``reset()`` (or the
``emulators`` fixture) and through unique prompts, since fault counters are keyed by
conversation content.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from emulators import EmulatorServer, start_emulator
from emulators.vertex.tokens import new_service_account

if TYPE_CHECKING:
    from google.oauth2.service_account import Credentials as ServiceAccountCredentials

__all__ = [
    "CLOUD_PLATFORM_SCOPE",
    "EmulatorHandle",
    "FalHandle",
    "VertexHandle",
    "anthropic_emulator",
    "emulators",
    "fal_emulator",
    "fal_tls_emulator",
    "gemini_emulator",
    "openai_emulator",
    "vertex_emulator",
]

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class EmulatorHandle:
    """A running emulator plus sync helpers over its ``/_emulator`` control API."""

    def __init__(
        self, name: str, server: EmulatorServer, *, verify: ssl.SSLContext | bool = True
    ) -> None:
        self.name = name
        self.server = server
        self.url = server.url
        self._control = httpx.Client(base_url=f"{server.url}/_emulator", timeout=5.0, verify=verify)

    def _post(self, path: str, body: dict[str, Any] | None = None) -> None:
        self._control.post(path, json=body or {}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._control.get("/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def set_fault(self, spec: str, count: int | None = None) -> None:
        """Fail the next ``count`` requests (all, when None) with ``spec``."""
        self._post("/faults", {"spec": spec, "count": count})

    def clear_faults(self) -> None:
        self._control.delete("/faults").raise_for_status()

    def configure(self, **settings: Any) -> None:
        """Change live settings: rate_limit_rps, rate_limit_burst, allowed_keys, hang_seconds."""
        self._post("/config", settings)

    def reset(self) -> None:
        """Forget faults, counters, statistics and configuration changes."""
        self._post("/reset")

    def close(self) -> None:
        self._control.close()
        self.server.stop()


class FalHandle(EmulatorHandle):
    """The Fal emulator's handle: queue timings and faults per queue operation too.

    ``ca_file`` is the PEM of the throw-away CA that signed an HTTPS emulator's certificate
    (None when it serves plain HTTP); clients trust it through ``SSL_CERT_FILE``.
    """

    ca_file: Path | None = None

    def set_timings(
        self,
        *,
        queue_s: float | None = None,
        run_s: float | None = None,
        training_s: float | None = None,
    ) -> None:
        """Seconds each new job waits in the queue and then runs (a training job: training_s)."""
        pairs = (("queue_s", queue_s), ("run_s", run_s), ("training_s", training_s))
        body = {k: v for k, v in pairs if v is not None}
        self._post("/fal/config", body)

    def configure_fal(self, *, webhook_retry_s: float) -> None:
        """Seconds between the deliveries of one callback (Fal's own are far apart)."""
        self._post("/fal/config", {"webhook_retry_s": webhook_retry_s})

    def set_queue_fault(self, operation: str, spec: str, count: int | None = None) -> None:
        """Fail the next ``count`` calls of one queue operation (submit, status, result,
        cancel) with ``spec``."""
        self._post("/fal/faults", {"operation": operation, "spec": spec, "count": count})

    def queue_stats(self) -> dict[str, Any]:
        response = self._control.get("/fal/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture(scope="session")
def fal_emulator() -> Iterator[FalHandle]:
    """The Fal queue emulator over plain HTTP (the gateway's plugin), shared by the session."""
    handle = FalHandle("fal", start_emulator("fal"))
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(scope="session")
def fal_tls_emulator() -> Iterator[FalHandle]:
    """The Fal queue emulator over HTTPS with a throw-away CA, as fal-client requires."""
    import trustme  # noqa: PLC0415 - a test-only dependency

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    with tempfile.TemporaryDirectory(prefix="fal-tls-") as folder:
        chain, key, ca_file = (Path(folder) / n for n in ("chain.pem", "key.pem", "ca.pem"))
        cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
        cert.private_key_pem.write_to_path(str(key))
        ca.cert_pem.write_to_path(str(ca_file))
        server = start_emulator("fal", tls=(str(chain), str(key)))
        context = ssl.create_default_context(cafile=str(ca_file))
        handle = FalHandle("fal", server, verify=context)
        handle.ca_file = ca_file
        try:
            yield handle
        finally:
            handle.close()


class VertexHandle(EmulatorHandle):
    """The Vertex emulator's handle: service accounts, token lifetime, forced refusals, and the
    per-call records (``emulators.vertex.calls``)."""

    def service_account(
        self, project: str = "emulated-project", name: str = "tests"
    ) -> dict[str, str]:
        """A throw-away service-account key file's content (a fresh RSA key; ``token_uri`` is
        this emulator's ``/token``) for google-auth; its public key is registered with the
        emulator, so the assertions' signatures are verified. ``reset()`` forgets the key."""
        info, key = new_service_account(project, f"{self.url}/token", name=name)
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._post(
            "/vertex/keys", {"account": info["client_email"], "public_key_pem": pem.decode()}
        )
        return info

    def generated_service_account(self, project: str = "emulated-project") -> dict[str, str]:
        """A service-account key file the emulator generated itself (what ``gateway up`` uses)."""
        response = self._control.post("/vertex/service-account", json={"project": project})
        response.raise_for_status()
        result: dict[str, str] = response.json()
        return result

    def credentials(self, project: str = "emulated-project") -> ServiceAccountCredentials:
        """google-auth service-account credentials (cloud-platform scope) of a new account."""
        from google.oauth2 import service_account  # noqa: PLC0415 - google-auth: tests only

        # google-auth leaves this factory unannotated.
        credentials: ServiceAccountCredentials = (
            service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                self.service_account(project), scopes=[CLOUD_PLATFORM_SCOPE]
            )
        )
        return credentials

    def configure_vertex(
        self, *, token_lifetime_s: int | None = None, allowed_projects: list[str] | None = None
    ) -> None:
        """Token lifetime in seconds (below 225 s google-auth refreshes before every request);
        ``allowed_projects``: other projects get 403 PERMISSION_DENIED."""
        body: dict[str, Any] = {}
        if token_lifetime_s is not None:
            body["token_lifetime_s"] = token_lifetime_s
        if allowed_projects is not None:
            body["allowed_projects"] = allowed_projects
        self._post("/vertex/config", body)

    def expire_tokens(self) -> None:
        """Every token minted so far stops working (its holder gets 401 UNAUTHENTICATED)."""
        self._post("/vertex/tokens/expire")

    def force_block(self, marker: str, count: int | None = 1) -> None:
        """The next ``count`` model calls behave as if their text held ``marker``
        (``[[block:SAFETY]]``, ``[[finish:NO_IMAGE]]``, ``[[rai:reason]]``)."""
        self._post("/vertex/blocks", {"marker": marker, "count": count})

    def clear_blocks(self) -> None:
        self._control.delete("/vertex/blocks").raise_for_status()

    def calls(self) -> list[dict[str, Any]]:
        """What each model call carried, oldest first."""
        calls: list[dict[str, Any]] = self.stats()["calls"]
        return calls


@pytest.fixture(scope="session")
def vertex_emulator() -> Iterator[VertexHandle]:
    """The Vertex AI emulator (generateContent, try-on, OAuth), shared by the session."""
    handle = VertexHandle("vertex", start_emulator("vertex"))
    try:
        yield handle
    finally:
        handle.close()


def _handle(name: str) -> Iterator[EmulatorHandle]:
    handle = EmulatorHandle(name, start_emulator(name))
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(scope="session")
def anthropic_emulator() -> Iterator[EmulatorHandle]:
    """The Anthropic Messages emulator, shared by the session."""
    yield from _handle("anthropic")


@pytest.fixture(scope="session")
def openai_emulator() -> Iterator[EmulatorHandle]:
    """The OpenAI Chat Completions emulator, shared by the session."""
    yield from _handle("openai")


@pytest.fixture(scope="session")
def gemini_emulator() -> Iterator[EmulatorHandle]:
    """The Gemini generateContent emulator, shared by the session."""
    yield from _handle("gemini")


@pytest.fixture
def emulators(
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
) -> Iterator[dict[str, EmulatorHandle]]:
    """The three emulators by provider name, reset before and after the test."""
    handles = {
        "anthropic": anthropic_emulator,
        "openai": openai_emulator,
        "gemini": gemini_emulator,
    }
    for handle in handles.values():
        handle.reset()
    yield handles
    for handle in handles.values():
        handle.reset()
