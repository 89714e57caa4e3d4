"""Verifying Fal's completion callbacks (pure; no I/O).

Why it exists: a callback is how Fal says a job ended without being asked; anyone can POST to
the receiving URL, so it counts only when its ED25519 signature verifies with one of the
configured keys (Fal's JWKS ``x`` values) and its timestamp is recent. Signed bytes: the
request id, user id, timestamp and hex SHA-256 of the raw body, joined by newlines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from plugins.fal.errors import FalWebhookRejected

__all__ = ["Callback", "verify_callback"]

_HEADER = "x-fal-webhook-"


class Callback(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    ok: bool
    payload: Any
    error: str | None


def _public_key(x: str) -> Ed25519PublicKey:
    raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_callback(
    headers: Mapping[str, str],
    body: bytes,
    keys: Sequence[str],
    *,
    now: float,
    max_skew_s: float = 300.0,
) -> Callback:
    """The callback, or FalWebhookRejected when it is not provably Fal's (or is stale)."""
    try:
        request_id = headers[_HEADER + "request-id"]
        user_id = headers[_HEADER + "user-id"]
        stamp = headers[_HEADER + "timestamp"]
        signature = bytes.fromhex(headers[_HEADER + "signature"])
    except (KeyError, ValueError) as exc:
        raise FalWebhookRejected("callback lacks Fal's signature headers") from exc
    try:
        skew = abs(now - int(stamp))
    except ValueError as exc:
        raise FalWebhookRejected("callback timestamp is not a number") from exc
    if skew > max_skew_s:
        raise FalWebhookRejected(f"callback timestamp is {skew:.0f} s off")
    digest = hashlib.sha256(body).hexdigest()
    message = "\n".join((request_id, user_id, stamp, digest)).encode()
    for x in keys:
        try:
            _public_key(x).verify(signature, message)
            break
        except (InvalidSignature, ValueError, binascii.Error):
            continue
    else:
        raise FalWebhookRejected("callback signature matches no configured key")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise FalWebhookRejected("callback body is not JSON") from exc
    if not isinstance(data, Mapping) or data.get("request_id") != request_id:
        raise FalWebhookRejected("callback body names another request")
    return Callback(
        request_id=request_id,
        ok=data.get("status") == "OK",
        payload=data.get("payload"),
        error=data.get("error") or data.get("payload_error"),
    )
