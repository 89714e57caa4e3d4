"""Artifacts: images and videos stored by content and passed by reference, signed links to
serve them back, and the guarded fetch that brings input URLs in.

- `store`: `ArtifactRef`, the `ArtifactStore` interface and `LocalArtifactStore` (a directory);
  `s3.S3ArtifactStore` (an S3-compatible bucket) is imported from its module, by the processes
  configured for it only (`settings.open_store`), since it loads botocore.
- `signing`: `sign` / `verify` for expiring links.
- `fetch`: `GuardedFetcher`, with the address rules in `addresses`.
- `errors`: the one error tree.

Depends on nothing else in the project, so consumers, pipelines and the proxy can all use it.
"""

from artifacts.addresses import AddressPolicy
from artifacts.errors import (
    ArtifactError,
    ArtifactNotFound,
    FetchFailed,
    FetchRefused,
    FetchRejected,
    InvalidArtifactId,
    RefusalReason,
    SignatureError,
    SignatureExpired,
    SignatureInvalid,
    StoreRejected,
    StoreUnavailable,
)
from artifacts.fetch import (
    DEFAULT_MAX_BYTES,
    FETCH_ERRORS,
    GuardedFetcher,
    Resolver,
    resolve_host,
    unusable_url,
)
from artifacts.signing import sign, verify
from artifacts.store import ArtifactRef, ArtifactStore, LocalArtifactStore, artifact_id_of

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FETCH_ERRORS",
    "AddressPolicy",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactRef",
    "ArtifactStore",
    "FetchFailed",
    "FetchRefused",
    "FetchRejected",
    "GuardedFetcher",
    "InvalidArtifactId",
    "LocalArtifactStore",
    "RefusalReason",
    "Resolver",
    "SignatureError",
    "SignatureExpired",
    "SignatureInvalid",
    "StoreRejected",
    "StoreUnavailable",
    "artifact_id_of",
    "resolve_host",
    "sign",
    "unusable_url",
    "verify",
]
