"""The emulator's OAuth 2.0 token endpoint for service-account JWT assertions, and its tokens.

Why it exists: Vertex AI clients (google-genai, LiteLLM, the gateway's plugin) authenticate
through google-auth's service-account credentials, which sign a JWT with the account's RSA key
and POST it to the account's ``token_uri``. A service-account file whose ``token_uri`` names
this emulator therefore lets every client mint and refresh real-looking access tokens
unchanged. What is checked, as Google's endpoint checks it:

- form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` (else
  ``unsupported_grant_type``) and ``assertion`` = an RS256 JWT;
- claims ``iss`` (the account's e-mail), a non-empty ``scope`` (else ``invalid_scope``: a
  credential built without ``scopes=`` is refused, as by Google), ``aud`` (google-auth always
  signs for ``https://oauth2.googleapis.com/token``, whatever ``token_uri`` says), ``iat`` and
  ``exp`` at most 3600 s apart and around now;
- the signature, when the account's public key is known: accounts the emulator generated
  (``new_service_account``) and keys registered through the control API. Assertions of other
  accounts are checked for structure and claims only, like a permissive sandbox.

Tokens live ``lifetime_s`` (3600 s, changeable through the control API). google-auth treats a
token as expired 225 s (3 min 45 s) before its expiry, so a lifetime below that makes every
client refresh before every request: that is how tests force refreshes without waiting.
Tokens are secrets: they are counted, never logged or recorded.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from emulators.http.errors import BadRequestBody

__all__ = [
    "DEFAULT_LIFETIME_S",
    "GRANT_TYPE",
    "TOKEN_AUDIENCES",
    "TokenStore",
    "new_service_account",
    "oauth_error",
]

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_AUDIENCES = frozenset(
    {"https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v4/token"}
)
DEFAULT_LIFETIME_S = 3600
_MAX_ASSERTION_S = 3600
_SKEW_S = 300
_TIMEFRAME = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)


def oauth_error(exc: BadRequestBody) -> dict[str, str]:
    """Google's token-endpoint error body; ``param`` names the form field at fault."""
    code = {"grant_type": "unsupported_grant_type", "scope": "invalid_scope"}.get(
        exc.param or "", "invalid_grant"
    )
    return {"error": code, "error_description": str(exc)}


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class _Issued:
    expires_at: float  # time.monotonic()
    account: str


def _decode(assertion: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signed bytes, signature) of a compact JWT, or BadRequestBody."""
    pieces = assertion.split(".")
    if len(pieces) != 3:
        raise BadRequestBody("Invalid JWT: not a compact JWS (three dot-separated parts)")
    try:
        header = json.loads(_b64url(pieces[0]))
        claims = json.loads(_b64url(pieces[1]))
        signature = _b64url(pieces[2])
    except (ValueError, binascii.Error) as exc:
        raise BadRequestBody(f"Invalid JWT: undecodable part ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise BadRequestBody("Invalid JWT: header and claims must be JSON objects")
    return header, claims, f"{pieces[0]}.{pieces[1]}".encode(), signature


def _check_claims(claims: Mapping[str, Any], own_audience: str | None, now: float) -> str:
    """The account the claims name, after Google's claim checks."""
    account = claims.get("iss")
    if not isinstance(account, str) or not account:
        raise BadRequestBody("Invalid JWT: missing iss claim")
    scope = claims.get("scope")
    if not isinstance(scope, str) or not scope.strip():
        raise BadRequestBody("Invalid OAuth scope or ID token audience provided.", "scope")
    audience = claims.get("aud")
    if audience not in TOKEN_AUDIENCES and audience != own_audience:
        raise BadRequestBody(f"Invalid JWT: Failed audience check for {audience!r}")
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise BadRequestBody(_TIMEFRAME)
    if expires - issued > _MAX_ASSERTION_S or expires <= issued:
        raise BadRequestBody(_TIMEFRAME)
    if issued > now + _SKEW_S or expires < now - _SKEW_S:
        raise BadRequestBody(_TIMEFRAME)
    return account


class TokenStore:
    """Access tokens minted from assertions, the public keys that verify them, and counters."""

    def __init__(self) -> None:
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self.reset()

    def reset(self) -> None:
        """Forget tokens, registered keys and counters; the lifetime goes back to 3600 s."""
        self.lifetime_s = DEFAULT_LIFETIME_S
        self._tokens: dict[str, _Issued] = {}
        self._keys.clear()
        self.minted = 0
        self.refused = 0

    def register_key(self, account: str, public_key_pem: str) -> None:
        """Verify ``account``'s assertions with this PEM public key (or certificate) from now on."""
        data = public_key_pem.encode()
        if b"CERTIFICATE" in data:
            from cryptography import x509  # noqa: PLC0415 - certificates are the rare form

            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("public key must be RSA (service accounts sign with RS256)")
        self._keys[account] = key

    def add_generated(self, account: str, key: rsa.RSAPrivateKey) -> None:
        self._keys[account] = key.public_key()

    def mint(self, form: Mapping[str, str], own_audience: str | None) -> dict[str, Any]:
        """The token response for one grant request; raises BadRequestBody when refused."""
        try:
            account = self._verify(form, own_audience)
        except BadRequestBody:
            self.refused += 1
            raise
        now = time.monotonic()
        self._tokens = {t: i for t, i in self._tokens.items() if i.expires_at > now}
        token = f"ya29.emu-{secrets.token_urlsafe(32)}"
        self._tokens[token] = _Issued(now + self.lifetime_s, account)
        self.minted += 1
        return {"access_token": token, "expires_in": self.lifetime_s, "token_type": "Bearer"}

    def _verify(self, form: Mapping[str, str], own_audience: str | None) -> str:
        grant = form.get("grant_type", "")
        if grant != GRANT_TYPE:
            raise BadRequestBody(f"Invalid grant_type: {grant}", "grant_type")
        assertion = form.get("assertion", "")
        if not assertion:
            raise BadRequestBody("Invalid JWT: missing assertion")
        header, claims, signed, signature = _decode(assertion)
        if header.get("alg") != "RS256":
            raise BadRequestBody("Invalid JWT Signature.")
        account = _check_claims(claims, own_audience, time.time())
        key = self._keys.get(account)
        if key is not None:
            try:
                key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature as exc:
                raise BadRequestBody("Invalid JWT Signature.") from exc
        return account

    def valid(self, token: str) -> bool:
        issued = self._tokens.get(token)
        return issued is not None and issued.expires_at > time.monotonic()

    def expire_all(self) -> None:
        """Make every token minted so far invalid (clients holding one get 401 next)."""
        self._tokens.clear()


def new_service_account(
    project: str, token_uri: str, *, name: str = "emulator"
) -> tuple[dict[str, str], rsa.RSAPrivateKey]:
    """A throw-away service-account key file's content (as the Cloud console downloads it)
    whose ``token_uri`` is ``token_uri``, and its private key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    email = f"{name}@{project}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(int.from_bytes(secrets.token_bytes(8), "big")),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
    return info, key
