"""Signed, expiring URLs for handing an artifact to an HTTP client without an API key.

The signature is HMAC-SHA256 over the artifact id and the expiry time, so a link grants one
artifact until one moment and cannot be stretched to another artifact or a later time.
The query string carries `expires` (Unix seconds) and `signature` (hex).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from urllib.parse import urlencode

from artifacts.errors import SignatureExpired, SignatureInvalid

__all__ = ["MIN_KEY_BYTES", "sign", "verify"]

# Shorter keys make the HMAC guessable; 32 random bytes is the recommended size.
MIN_KEY_BYTES = 16
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_EXPIRES = re.compile(r"[0-9]{1,12}")


def _check_key(key: bytes) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"signing key must be at least {MIN_KEY_BYTES} bytes")


def _mac(artifact_id: str, expires: int, key: bytes) -> str:
    message = f"{artifact_id}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(artifact_id: str, expires_at: float, key: bytes) -> str:
    """The query string (`?expires=...&signature=...`) granting `artifact_id` until
    `expires_at` (Unix seconds, rounded down to a whole second)."""
    _check_key(key)
    if not math.isfinite(expires_at) or expires_at < 0:
        raise ValueError("expires_at must be a non-negative Unix time")
    expires = int(expires_at)
    return "?" + urlencode({"expires": expires, "signature": _mac(artifact_id, expires, key)})


def verify(artifact_id: str, expires: str | int, signature: str, key: bytes, now: float) -> None:
    """Return when the signature grants `artifact_id` at `now`; raise `SignatureInvalid` for a
    malformed or foreign signature, `SignatureExpired` for a genuine one past its time.

    The signature is checked before the expiry, so a client that edits `expires` learns only
    that the link is invalid."""
    _check_key(key)
    text = str(expires)
    if _EXPIRES.fullmatch(text) is None or _SIGNATURE.fullmatch(signature) is None:
        raise SignatureInvalid("malformed signature or expiry")
    expires_at = int(text)
    if not hmac.compare_digest(_mac(artifact_id, expires_at, key), signature):
        raise SignatureInvalid("signature does not match")
    if now >= expires_at:
        raise SignatureExpired(f"link expired at {expires_at}")
