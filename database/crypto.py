"""Provider keys sealed at rest under the key-encryption keys (Fernet, from `cryptography`).

Why Fernet: authenticated encryption (AES-128-CBC + HMAC-SHA256) with the key id-free
rotation story of MultiFernet: the first key seals, every listed key opens, and `rotate`
re-seals a token under the first one. A wrong key fails authentication instead of producing
garbage, which is what lets start-up refuse a wrong key.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from database.errors import EncryptionKeyError

__all__ = ["Sealer"]


class Sealer:
    """Seals and opens secrets; `keys` are Fernet keys, the one to seal with first."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise EncryptionKeyError("no key-encryption key given")
        fernets: list[Fernet] = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode()))
            except ValueError:
                # The key itself is never echoed: it is a secret even when malformed.
                raise EncryptionKeyError(
                    f"key-encryption key #{position} is not a Fernet key "
                    "(32 bytes, url-safe base64; make one with `gateway keys new-kek`)"
                ) from None
        self._current = fernets[0]
        self._all = MultiFernet(fernets)

    @staticmethod
    def generate() -> str:
        """A new random key-encryption key."""
        return Fernet.generate_key().decode()

    def seal(self, secret: str) -> str:
        return self._current.encrypt(secret.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._all.decrypt(token.encode()).decode()
        except InvalidToken:
            raise EncryptionKeyError(
                "a stored key does not open with any key-encryption key given"
            ) from None

    def reseal(self, token: str) -> str:
        """`token` sealed under the current key (opened with any of the keys)."""
        try:
            return self._all.rotate(token.encode()).decode()
        except InvalidToken:
            raise EncryptionKeyError(
                "a stored key does not open with any key-encryption key given"
            ) from None
