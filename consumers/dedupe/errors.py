"""Errors raised by ``consumers.dedupe``.

Why one root: the consumer runtime catches ``DedupeStoreError`` around every store call and
branches on ``retriable`` (redeliver the event later) rather than on Redis exception types,
which are translated in exactly one place (``_redis._translate``).

    DedupeStoreError                    retriable = False
    ├── DedupeStoreUnavailable          retriable = True   (connection refused, timed out)
    ├── DedupeStoreBackendError         retriable = False  (Redis answered with an error)
    └── DedupeStoreNotStarted           retriable = False  (used before start() / after stop())
"""

from __future__ import annotations

from consumers.errors import ConsumerError

__all__ = [
    "DedupeStoreBackendError",
    "DedupeStoreError",
    "DedupeStoreNotStarted",
    "DedupeStoreUnavailable",
]


class DedupeStoreError(ConsumerError):
    """Root of every error raised by ``consumers.dedupe`` (a branch of `consumers.errors`)."""

    retriable: bool = False


class DedupeStoreUnavailable(DedupeStoreError):
    """The backing store could not be reached in time; the same call may succeed later."""

    retriable = True


class DedupeStoreBackendError(DedupeStoreError):
    """The backing store rejected a command (wrong key type, script error, auth)."""

    retriable = False


class DedupeStoreNotStarted(DedupeStoreError):
    """A store method was called outside its start()/stop() lifecycle."""

    retriable = False
