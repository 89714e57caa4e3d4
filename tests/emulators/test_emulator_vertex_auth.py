"""Service-account OAuth on the Vertex emulator: google-auth minting, refreshing, refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import google.auth.crypt
import google.auth.exceptions
import google.auth.jwt
import google.oauth2.credentials
import httpx
import pytest
from google import genai
from google.genai import errors
from google.oauth2 import service_account

from emulators.testing import CLOUD_PLATFORM_SCOPE, VertexHandle
from emulators.vertex import GRANT_TYPE

PROJECT = "fashion-test"
LOCATION = "us-central1"
MODEL = "gemini-3-pro-preview"


def vertex_client(url: str, credentials: object | None = None) -> genai.Client:
    """A Vertex-mode client on the emulator (credentials None: application default)."""
    return genai.Client(
        vertexai=True,
        project=PROJECT,
        location=LOCATION,
        credentials=credentials,
        http_options={"base_url": url},
    )


def ask(client: genai.Client, prompt: str = "hello") -> str:
    """One generateContent round trip; the answer's text."""
    return client.models.generate_content(model=MODEL, contents=prompt).text or ""


def assertion(info: dict[str, str], **claims: object) -> str:
    """An RS256 assertion signed with ``info``'s key, with google-auth's claims overridden."""
    now = int(time.time())
    payload = {
        "iss": info["client_email"],
        "scope": CLOUD_PLATFORM_SCOPE,
        "aud": "https://oauth2.googleapis.com/token",
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    signer = google.auth.crypt.RSASigner.from_service_account_info(info)
    return google.auth.jwt.encode(signer, payload).decode()


def grant(url: str, token: str, grant_type: str = GRANT_TYPE) -> httpx.Response:
    """POST one grant to the emulator's token endpoint."""
    return httpx.post(f"{url}/token", data={"grant_type": grant_type, "assertion": token})


def test_sdk_mints_a_token_once_for_a_long_lifetime(vertex_em: VertexHandle) -> None:
    """With the default 3600 s lifetime, two calls share one minted token."""
    client = vertex_client(vertex_em.url, vertex_em.credentials(PROJECT))
    assert ask(client).startswith(f"[vertex-emulator {MODEL}]")
    ask(client)
    assert vertex_em.stats()["tokens_minted"] == 1


def test_short_lifetime_makes_the_sdk_refresh(vertex_em: VertexHandle) -> None:
    """A lifetime under google-auth's 225 s threshold makes every call mint a new token."""
    vertex_em.configure_vertex(token_lifetime_s=60)
    credentials = vertex_em.credentials(PROJECT)
    client = vertex_client(vertex_em.url, credentials)
    ask(client)
    first = credentials.token
    ask(client)
    assert credentials.token != first
    assert vertex_em.stats()["tokens_minted"] == 2


def test_expired_tokens_are_unauthenticated(vertex_em: VertexHandle) -> None:
    """A token the emulator no longer honours is a 401 UNAUTHENTICATED ClientError."""
    client = vertex_client(vertex_em.url, vertex_em.credentials(PROJECT))
    ask(client)
    vertex_em.expire_tokens()
    with pytest.raises(errors.ClientError) as caught:
        ask(client)
    assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
    assert vertex_em.stats()["unauthenticated"] == 1


def test_static_token_for_simple_clients(vertex_em: VertexHandle) -> None:
    """A static token set as allowed_keys authenticates; any other fixed token does not."""
    vertex_em.configure(allowed_keys=["static-vertex-token"])
    good = google.oauth2.credentials.Credentials(token="static-vertex-token")
    bad = google.oauth2.credentials.Credentials(token="guessed-token")
    assert ask(vertex_client(vertex_em.url, good))
    with pytest.raises(errors.ClientError) as caught:
        ask(vertex_client(vertex_em.url, bad))
    assert caught.value.code == 401


def test_missing_bearer_token_is_googles_401(vertex_em: VertexHandle) -> None:
    """A call without Authorization gets Google's error body with UNAUTHENTICATED."""
    url = f"{vertex_em.url}/v1/projects/p/locations/l/publishers/google/models/{MODEL}"
    response = httpx.post(f"{url}:generateContent", json={"contents": [{"parts": [{"text": "x"}]}]})
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_key_file_from_the_environment(
    vertex_em: VertexHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GOOGLE_APPLICATION_CREDENTIALS naming an emulator-generated key file just works."""
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(vertex_em.generated_service_account(PROJECT)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    assert ask(vertex_client(vertex_em.url)).startswith("[vertex-emulator")
    assert vertex_em.stats()["tokens_minted"] == 1


def test_wrong_signature_is_refused(vertex_em: VertexHandle) -> None:
    """An assertion for a known account signed with another key fails google-auth's refresh."""
    known = vertex_em.generated_service_account(PROJECT)
    impostor = {
        **vertex_em.service_account(PROJECT, name="other"),
        "client_email": known["client_email"],
    }
    credentials = service_account.Credentials.from_service_account_info(
        impostor, scopes=[CLOUD_PLATFORM_SCOPE]
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="Invalid JWT Signature"):
        ask(vertex_client(vertex_em.url, credentials))
    assert vertex_em.stats()["token_refusals"] == 1


def test_unscoped_credentials_are_refused(vertex_em: VertexHandle) -> None:
    """Credentials built without scopes send an empty scope: invalid_scope, as from Google."""
    credentials = service_account.Credentials.from_service_account_info(
        vertex_em.service_account(PROJECT)
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_scope"):
        ask(vertex_client(vertex_em.url, credentials))


def test_token_endpoint_answers_googles_shape(vertex_em: VertexHandle) -> None:
    """A good grant returns access_token, expires_in and token_type Bearer."""
    body = grant(vertex_em.url, assertion(vertex_em.service_account(PROJECT))).json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["access_token"].startswith("ya29.")


@pytest.mark.parametrize(
    ("claims", "grant_type", "error"),
    [
        ({}, "client_credentials", "unsupported_grant_type"),
        ({"iat": 1_000_000, "exp": 1_003_600}, GRANT_TYPE, "invalid_grant"),
        ({"exp": int(time.time()) + 7200}, GRANT_TYPE, "invalid_grant"),
        ({"aud": "https://example.com/token"}, GRANT_TYPE, "invalid_grant"),
        ({"scope": ""}, GRANT_TYPE, "invalid_scope"),
    ],
    ids=["grant-type", "stale", "too-long", "audience", "scope"],
)
def test_token_endpoint_refuses_bad_assertions(
    vertex_em: VertexHandle, claims: dict[str, object], grant_type: str, error: str
) -> None:
    """Bad grant types, timeframes, audiences and scopes get Google's OAuth error codes."""
    token = assertion(vertex_em.service_account(PROJECT), **claims)
    response = grant(vertex_em.url, token, grant_type)
    assert response.status_code == 400 and response.json()["error"] == error
