"""The gateway's database: one SQL database shared by every component that keeps state.

An SQLite file by default (embedded, nothing to run), PostgreSQL when a URL names one; the
schema is built only by Alembic migrations (`migrations/`), applied at start-up. Modules:
`engine` (URL -> async engine, migrations), `schema` (the tables), `crypto` (provider keys
sealed under the key-encryption key), `keys` (users, gateway keys, provider keys), `errors`.
Callers see typed records, never SQL.
"""

from database.crypto import Sealer
from database.engine import Database, async_url
from database.errors import (
    DatabaseConfigError,
    DatabaseError,
    DuplicateRecordError,
    EncryptionKeyError,
    RecordError,
    SchemaError,
    UnknownRecordError,
)
from database.keys import (
    GatewayKeyInfo,
    IssuedKey,
    KeyRecords,
    Role,
    StoredIdentity,
    StoredKeyInfo,
    UserInfo,
    digest,
)

__all__ = [
    "Database",
    "DatabaseConfigError",
    "DatabaseError",
    "DuplicateRecordError",
    "EncryptionKeyError",
    "GatewayKeyInfo",
    "IssuedKey",
    "KeyRecords",
    "RecordError",
    "Role",
    "SchemaError",
    "Sealer",
    "StoredIdentity",
    "StoredKeyInfo",
    "UnknownRecordError",
    "UserInfo",
    "async_url",
    "digest",
]
