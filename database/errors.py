"""The database package's errors: one root, each class saying whether a retry may help.

    DatabaseError                  retriable: False
    ├── DatabaseConfigError        a URL this package cannot open (scheme, syntax)
    ├── SchemaError                the schema cannot be brought to this code's revision
    ├── EncryptionKeyError         key-encryption keys missing, malformed, or not this database's
    └── RecordError                a write the stored state refuses (unknown user, duplicate)
        ├── UnknownRecordError     the user or key named does not exist
        ├── DuplicateRecordError   the user already exists
        └── FileTooLargeError      a media file above the stored-file size limit

Errors carry messages safe to show and log: no key material, no connection password.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "DatabaseConfigError",
    "DatabaseError",
    "DuplicateRecordError",
    "EncryptionKeyError",
    "FileTooLargeError",
    "RecordError",
    "SchemaError",
    "UnknownRecordError",
]


class DatabaseError(Exception):
    """Root of this package's errors."""

    retriable: ClassVar[bool] = False


class DatabaseConfigError(DatabaseError):
    """The database URL names no database this package can open."""


class SchemaError(DatabaseError):
    """Migrating failed, or the database was migrated by a newer release."""


class EncryptionKeyError(DatabaseError):
    """The key-encryption keys cannot open the stored keys: the process must not start."""


class RecordError(DatabaseError):
    """A change the stored state refuses; nothing was written."""


class UnknownRecordError(RecordError):
    """The user or gateway key named does not exist."""


class DuplicateRecordError(RecordError):
    """The user to create exists already."""


class FileTooLargeError(RecordError):
    """The file is larger than a stored media file may be."""
