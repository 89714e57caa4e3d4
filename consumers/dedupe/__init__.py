"""At-most-once publishing of results per event id, across consumer processes.

``open_dedupe_store`` picks Redis (shared) or a bounded in-memory store (per process); the
exact guarantee and its limits are stated in ``consumers.dedupe._protocol``.
"""

from consumers.dedupe._memory import MemoryDedupeStore
from consumers.dedupe._open import open_dedupe_store
from consumers.dedupe._protocol import (
    CLAIM_TTL_S,
    PUBLISHED_TTL_S,
    BatchDedupeStore,
    DedupeStore,
)
from consumers.dedupe._redis import RedisDedupeStore
from consumers.dedupe.errors import (
    DedupeStoreBackendError,
    DedupeStoreError,
    DedupeStoreNotStarted,
    DedupeStoreUnavailable,
)

__all__ = [
    "CLAIM_TTL_S",
    "PUBLISHED_TTL_S",
    "BatchDedupeStore",
    "DedupeStore",
    "DedupeStoreBackendError",
    "DedupeStoreError",
    "DedupeStoreNotStarted",
    "DedupeStoreUnavailable",
    "MemoryDedupeStore",
    "RedisDedupeStore",
    "open_dedupe_store",
]
