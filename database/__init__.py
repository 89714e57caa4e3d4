"""The gateway's database: one SQL database shared by every component that keeps state.

An SQLite file by default (embedded, nothing to run), PostgreSQL when a URL names one; the
schema is built only by Alembic migrations (`migrations/`), applied at start-up. Modules:
`engine` (URL -> async engine, migrations), `schema` (the tables), `crypto` (provider keys
sealed under the key-encryption key), `keys` (users, gateway keys, provider keys), `jobs`
(media jobs, their events and the files they read), `errors`. Callers see typed records,
never SQL.
"""

from database.crypto import Sealer
from database.engine import Database, async_url
from database.errors import (
    DatabaseConfigError,
    DatabaseError,
    DuplicateRecordError,
    EncryptionKeyError,
    FileTooLargeError,
    RecordError,
    SchemaError,
    UnknownRecordError,
)
from database.jobs import MAX_FILE_BYTES, JobEvent, JobRecords, StoredFile, StoredJob
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
    "MAX_FILE_BYTES",
    "Database",
    "DatabaseConfigError",
    "DatabaseError",
    "DuplicateRecordError",
    "EncryptionKeyError",
    "FileTooLargeError",
    "GatewayKeyInfo",
    "IssuedKey",
    "JobEvent",
    "JobRecords",
    "KeyRecords",
    "RecordError",
    "Role",
    "SchemaError",
    "Sealer",
    "StoredFile",
    "StoredIdentity",
    "StoredJob",
    "StoredKeyInfo",
    "UnknownRecordError",
    "UserInfo",
    "async_url",
    "digest",
]
