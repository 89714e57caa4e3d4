"""Keys and identities as stored: users, hashed gateway keys, sealed provider keys.

Why a repository: the proxy asks narrow questions ("which identity holds this key digest",
"the key of this owner for this provider", "has anything changed") and never sees SQL. Every
change bumps `key_state.version` in its own transaction, which is how other processes learn
their caches are stale. Plain secrets exist only in arguments and return values: what is
written is a digest or a sealed token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from database.crypto import Sealer
from database.engine import Database
from database.errors import DuplicateRecordError, EncryptionKeyError, UnknownRecordError
from database.schema import SYSTEM_OWNER, gateway_keys, key_state, provider_keys, users

__all__ = [
    "GatewayKeyInfo",
    "IssuedKey",
    "KeyRecords",
    "Role",
    "StoredIdentity",
    "StoredKeyInfo",
    "UserInfo",
    "digest",
]

Role = Literal["admin", "user"]
_CHECK = "gateway-key-encryption-check"
_KEY_PREFIX = "gwk"


def digest(gateway_key: str) -> str:
    """What is stored for a gateway key, and looked up when one is presented."""
    return hashlib.sha256(gateway_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredIdentity:
    user_id: str
    role: Role
    key_id: str


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new gateway key: `key` is shown once, to whoever asked for it, and never stored."""

    key_id: str
    user_id: str
    key: str


@dataclass(frozen=True, slots=True)
class GatewayKeyInfo:
    key_id: str
    user_id: str
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class UserInfo:
    user_id: str
    role: Role
    created_at: float


@dataclass(frozen=True, slots=True)
class StoredKeyInfo:
    """A provider key as listings show it: its provider and last four characters."""

    provider: str
    tail: str
    updated_at: float


class KeyRecords:
    """Users, gateway keys and provider keys in `database`; `sealer` may be None only while no
    provider key is stored (setting one then fails with EncryptionKeyError)."""

    def __init__(self, database: Database, sealer: Sealer | None) -> None:
        self._db = database
        self._sealer = sealer

    async def check_sealer(self) -> None:
        """Refuse to go on unless the key-encryption keys open this database's keys."""
        async with self._db.engine.begin() as conn:
            check = (
                await conn.execute(sa.select(key_state.c.seal_check).where(key_state.c.id == 1))
            ).scalar_one()
            stored = await conn.execute(sa.select(sa.func.count()).select_from(provider_keys))
            count = stored.scalar_one()
            if self._sealer is None:
                if check is not None or count:
                    raise EncryptionKeyError(
                        "the database holds encrypted provider keys but no key-encryption key "
                        "was given: refusing to start"
                    )
                return
            if check is None:
                await conn.execute(
                    key_state.update()
                    .where(key_state.c.id == 1)
                    .values(seal_check=self._sealer.seal(_CHECK))
                )
                return
            try:
                opened = self._sealer.open(check)
            except EncryptionKeyError:
                opened = None
            if opened != _CHECK:
                raise EncryptionKeyError(
                    "the key-encryption key does not open this database's provider keys "
                    "(wrong key, or the old key was dropped before rotating): refusing to start"
                )

    async def version(self) -> int:
        async with self._db.engine.connect() as conn:
            result = await conn.execute(sa.select(key_state.c.version).where(key_state.c.id == 1))
            return int(result.scalar_one())

    # --- identities -------------------------------------------------------------------------

    async def identity(self, key_digest: str) -> StoredIdentity | None:
        """Who holds the gateway key with this digest, unless it is unknown or revoked."""
        query = (
            sa.select(gateway_keys.c.id, users.c.id, users.c.role)
            .join(users, users.c.id == gateway_keys.c.user_id)
            .where(gateway_keys.c.key_hash == key_digest, gateway_keys.c.revoked_at.is_(None))
        )
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        key_id, user_id, role = row
        return StoredIdentity(user_id=user_id, role=role, key_id=key_id)

    async def create_user(self, user_id: str, role: Role) -> UserInfo:
        now = time.time()
        async with self._db.engine.begin() as conn:
            if await _user_role(conn, user_id) is not None:
                raise DuplicateRecordError(f"user '{user_id}' exists already")
            await conn.execute(users.insert().values(id=user_id, role=role, created_at=now))
            await _bump(conn)
        return UserInfo(user_id=user_id, role=role, created_at=now)

    async def list_users(self) -> list[UserInfo]:
        async with self._db.engine.connect() as conn:
            rows = await conn.execute(sa.select(users).order_by(users.c.id))
            return [UserInfo(user_id=r.id, role=r.role, created_at=r.created_at) for r in rows]

    async def issue_gateway_key(self, user_id: str) -> IssuedKey:
        key_id = secrets.token_hex(6)
        key = f"{_KEY_PREFIX}-{key_id}-{secrets.token_urlsafe(32)}"
        async with self._db.engine.begin() as conn:
            if await _user_role(conn, user_id) is None:
                raise UnknownRecordError(f"no user '{user_id}'")
            await conn.execute(
                gateway_keys.insert().values(
                    id=key_id, user_id=user_id, key_hash=digest(key), created_at=time.time()
                )
            )
            await _bump(conn)
        return IssuedKey(key_id=key_id, user_id=user_id, key=key)

    async def revoke_gateway_key(self, key_id: str) -> None:
        async with self._db.engine.begin() as conn:
            result = await conn.execute(
                gateway_keys.update()
                .where(gateway_keys.c.id == key_id, gateway_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            if result.rowcount == 0:
                raise UnknownRecordError(f"no active gateway key '{key_id}'")
            await _bump(conn)

    async def list_gateway_keys(self, user_id: str | None = None) -> list[GatewayKeyInfo]:
        query = sa.select(gateway_keys).order_by(gateway_keys.c.created_at)
        if user_id is not None:
            query = query.where(gateway_keys.c.user_id == user_id)
        async with self._db.engine.connect() as conn:
            return [
                GatewayKeyInfo(
                    key_id=r.id, user_id=r.user_id, created_at=r.created_at, revoked_at=r.revoked_at
                )
                for r in await conn.execute(query)
            ]

    # --- provider keys ----------------------------------------------------------------------

    async def provider_key(self, user_id: str | None, provider: str) -> str | None:
        """The plain key stored for `provider` by `user_id` (None: the system key), if any."""
        owner = _owner(user_id)
        query = sa.select(provider_keys.c.sealed).where(
            provider_keys.c.owner == owner, provider_keys.c.provider == provider
        )
        async with self._db.engine.connect() as conn:
            sealed = (await conn.execute(query)).scalar_one_or_none()
        if sealed is None:
            return None
        return self._require_sealer().open(sealed)

    async def set_provider_key(self, user_id: str | None, provider: str, key: str) -> StoredKeyInfo:
        """Store `user_id`'s key (None: the system key) for `provider`, replacing any."""
        owner = _owner(user_id)
        sealed = self._require_sealer().seal(key)
        info = StoredKeyInfo(provider=provider, tail=key[-4:], updated_at=time.time())
        where = (provider_keys.c.owner == owner, provider_keys.c.provider == provider)
        async with self._db.engine.begin() as conn:
            if owner != SYSTEM_OWNER and await _user_role(conn, owner) is None:
                raise UnknownRecordError(f"no user '{owner}'")
            values = {"sealed": sealed, "tail": info.tail, "updated_at": info.updated_at}
            updated = await conn.execute(provider_keys.update().where(*where).values(**values))
            if updated.rowcount == 0:
                await conn.execute(
                    provider_keys.insert().values(owner=owner, provider=provider, **values)
                )
            await _bump(conn)
        return info

    async def delete_provider_key(self, user_id: str | None, provider: str) -> bool:
        """Delete the key; False when there was none (nothing changed)."""
        owner = _owner(user_id)
        async with self._db.engine.begin() as conn:
            result = await conn.execute(
                provider_keys.delete().where(
                    provider_keys.c.owner == owner, provider_keys.c.provider == provider
                )
            )
            if result.rowcount == 0:
                return False
            await _bump(conn)
        return True

    async def list_provider_keys(self, user_id: str | None) -> list[StoredKeyInfo]:
        owner = _owner(user_id)
        query = (
            sa.select(provider_keys.c.provider, provider_keys.c.tail, provider_keys.c.updated_at)
            .where(provider_keys.c.owner == owner)
            .order_by(provider_keys.c.provider)
        )
        async with self._db.engine.connect() as conn:
            return [
                StoredKeyInfo(provider=r.provider, tail=r.tail, updated_at=r.updated_at)
                for r in await conn.execute(query)
            ]

    async def reseal_all(self) -> int:
        """Re-seal every provider key (and the check token) under the current key-encryption
        key, in one transaction; returns how many provider keys were re-sealed."""
        sealer = self._require_sealer()
        async with self._db.engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        provider_keys.c.owner, provider_keys.c.provider, provider_keys.c.sealed
                    )
                )
            ).all()
            for owner, provider, sealed in rows:
                await conn.execute(
                    provider_keys.update()
                    .where(provider_keys.c.owner == owner, provider_keys.c.provider == provider)
                    .values(sealed=sealer.reseal(sealed))
                )
            await conn.execute(
                key_state.update().where(key_state.c.id == 1).values(seal_check=sealer.seal(_CHECK))
            )
        return len(rows)

    def _require_sealer(self) -> Sealer:
        if self._sealer is None:
            raise EncryptionKeyError(
                "provider keys cannot be stored or read: no key-encryption key was given"
            )
        return self._sealer


def _owner(user_id: str | None) -> str:
    return SYSTEM_OWNER if user_id is None else user_id


async def _user_role(conn: AsyncConnection, user_id: str) -> str | None:
    result = await conn.execute(sa.select(users.c.role).where(users.c.id == user_id))
    role: str | None = result.scalar_one_or_none()
    return role


async def _bump(conn: AsyncConnection) -> None:
    await conn.execute(
        key_state.update().where(key_state.c.id == 1).values(version=key_state.c.version + 1)
    )
