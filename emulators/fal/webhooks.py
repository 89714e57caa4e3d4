"""Fal's completion callbacks: signed with the emulator's own ED25519 key, retried until accepted.

Why it exists: a receiver must verify Fal's signature (request id, user id, timestamp and the
SHA-256 of the body, joined by newlines, signed with a key from Fal's JWKS) and be idempotent,
since Fal delivers again until it gets a 2xx. The emulator signs the same way with a key of its
own, published at ``/.well-known/jwks.json``, and retries the same way (``attempts`` tries,
``retry_s`` apart; Fal's are 10 over two hours).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["USER_ID", "WebhookSender", "signed_message"]

USER_ID = "emulated-fal-user"


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """The bytes Fal signs for one delivery."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((request_id, user_id, timestamp, digest)).encode()


@dataclass(slots=True)
class WebhookSender:
    """Signs and delivers callbacks; ``deliveries`` records (request id, attempt, status)."""

    attempts: int = 10
    retry_s: float = 0.2
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    deliveries: list[tuple[str, int, int]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def jwks(self) -> dict[str, Any]:
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "emulator"}]}

    def headers(self, request_id: str, body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        signature = self.key.sign(signed_message(request_id, USER_ID, stamp, body)).hex()
        return {
            "content-type": "application/json",
            "x-fal-webhook-request-id": request_id,
            "x-fal-webhook-user-id": USER_ID,
            "x-fal-webhook-timestamp": stamp,
            "x-fal-webhook-signature": signature,
        }

    def schedule(self, url: str, request_id: str, at: float, payload: Any) -> None:
        """Deliver ``payload`` for ``request_id`` to ``url`` once the job ends (clock ``at``).
        ``payload`` is called then, so a cancelled job reports its cancellation."""
        task = asyncio.get_running_loop().create_task(self._deliver(url, request_id, at, payload))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, request_id: str, at: float, payload: Any) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        status, result = payload()
        body: dict[str, Any] = {
            "request_id": request_id,
            "gateway_request_id": request_id,
            "status": "OK" if status < 400 else "ERROR",
            "payload": result,
        }
        if status >= 400:
            body["error"] = f"Invalid status code: {status}"
        raw = json.dumps(body).encode()
        async with httpx.AsyncClient(timeout=10.0) as client:
            for attempt in range(1, self.attempts + 1):
                try:
                    response = await client.post(
                        url, content=raw, headers=self.headers(request_id, raw)
                    )
                    code = response.status_code
                except httpx.HTTPError:
                    code = 0
                self.deliveries.append((request_id, attempt, code))
                if 200 <= code < 300:
                    return
                await asyncio.sleep(self.retry_s)
