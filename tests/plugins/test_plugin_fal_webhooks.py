"""Verifying Fal's signed completion callbacks, with callbacks signed as the emulator signs."""

from __future__ import annotations

import json
import time

import pytest

from emulators.fal.webhooks import WebhookSender
from plugins.fal import errors as fal_errors
from plugins.fal.webhooks import verify_callback

SENDER = WebhookSender()
KEYS = [SENDER.jwks()["keys"][0]["x"]]


def _signed(body: dict[str, object]) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(body).encode()
    return SENDER.headers(str(body["request_id"]), raw), raw


def test_a_signed_callback_verifies() -> None:
    """A callback signed with a configured key is accepted and read."""
    headers, raw = _signed({"request_id": "r1", "status": "OK", "payload": {"a": 1}})
    callback = verify_callback(headers, raw, KEYS, now=time.time())
    assert (callback.request_id, callback.ok, callback.payload) == ("r1", True, {"a": 1})


def test_a_tampered_body_is_rejected() -> None:
    """Changing one byte of the body breaks the signature."""
    headers, raw = _signed({"request_id": "r2", "status": "OK", "payload": None})
    with pytest.raises(fal_errors.FalWebhookRejected):
        verify_callback(headers, raw.replace(b"OK", b"KO"), KEYS, now=time.time())


def test_a_stale_callback_is_rejected() -> None:
    """A timestamp further off than max_skew_s is refused even with a good signature."""
    headers, raw = _signed({"request_id": "r3", "status": "OK", "payload": None})
    with pytest.raises(fal_errors.FalWebhookRejected, match="off"):
        verify_callback(headers, raw, KEYS, now=time.time() + 3600, max_skew_s=300)


def test_an_unknown_key_is_rejected() -> None:
    """A callback signed by a key not in the list is refused."""
    headers, raw = _signed({"request_id": "r4", "status": "OK", "payload": None})
    other = [WebhookSender().jwks()["keys"][0]["x"]]
    with pytest.raises(fal_errors.FalWebhookRejected, match="no configured key"):
        verify_callback(headers, raw, other, now=time.time())
