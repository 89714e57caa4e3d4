"""Every failure the artifacts package raises, under one root.

Callers branch on `retriable` rather than on lists of types: a consumer turns a retriable
failure into "try the event again later" and anything else into a failure result naming the
cause. Messages name the cause and never carry a URL's userinfo or query string.

    ArtifactError                  retriable=False
    ├── InvalidArtifactId          the id is not 64 lowercase hex digits
    ├── ArtifactNotFound           no artifact with that id
    ├── FetchRefused               the fetch policy said no (`reason` says which rule)
    ├── FetchRejected              a 4xx other than 408 / 425 / 429, or a name that does not exist
    ├── FetchFailed                retriable=True: timeout, connection error, 5xx, 408, 429
    ├── StoreUnavailable           retriable=True: the store did not answer (connection, 5xx)
    ├── StoreRejected              the store refused the call (credentials, bucket, a 4xx)
    └── SignatureError
        ├── SignatureInvalid       malformed or not made with this key
        └── SignatureExpired       made with this key, but its time has passed
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ArtifactError",
    "ArtifactNotFound",
    "FetchFailed",
    "FetchRefused",
    "FetchRejected",
    "InvalidArtifactId",
    "RefusalReason",
    "SignatureError",
    "SignatureExpired",
    "SignatureInvalid",
    "StoreRejected",
    "StoreUnavailable",
]

# Why a fetch was refused before (or while) anything was downloaded.
RefusalReason = Literal[
    "scheme",
    "invalid_url",
    "private_address",
    "too_large",
    "content_type",
    "too_many_redirects",
]


class ArtifactError(Exception):
    """Root of every error this package raises."""

    retriable: bool = False


class InvalidArtifactId(ArtifactError):
    """The id is not a sha256 hex digest; refused before it can name a path."""


class ArtifactNotFound(ArtifactError):
    """No artifact with that id is stored (never put, deleted, or garbage-collected)."""

    def __init__(self, artifact_id: str) -> None:
        super().__init__(f"artifact {artifact_id} not found")
        self.artifact_id = artifact_id


class FetchRefused(ArtifactError):
    """The fetch policy refused the URL, an address it resolves to, or the response."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(f"fetch refused ({reason}): {message}")
        self.reason: RefusalReason = reason


class FetchRejected(ArtifactError):
    """The server (or the name service) answered no; asking again gets the same answer.
    `status_code` is None when the host name does not exist."""

    def __init__(self, status_code: int | None, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class FetchFailed(ArtifactError):
    """The fetch did not complete for a reason that may pass: timeout, connection, 5xx."""

    retriable = True


class StoreUnavailable(ArtifactError):
    """The artifact store could not be reached or failed on its side (a connection error, a
    timeout, a 5xx, throttling): the same call may succeed later. Never carries credentials."""

    retriable = True


class StoreRejected(ArtifactError):
    """The artifact store refused the call (wrong credentials, a missing bucket, no access):
    asking again gets the same answer until its configuration changes."""


class SignatureError(ArtifactError):
    """Root of the signed-URL failures."""


class SignatureInvalid(SignatureError):
    """The signature is malformed or was not made with this key for this artifact and time."""


class SignatureExpired(SignatureError):
    """The signature is genuine but its expiry time has passed."""
