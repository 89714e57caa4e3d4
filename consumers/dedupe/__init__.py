"""At-most-once publishing of results per event id, across consumer processes.

``open_dedupe_store`` (``_factory``) picks Redis (shared, ``_redis``) or a bounded in-memory
store (per process, ``_memory``); the exact guarantee and its limits are stated in
``_protocol``. ``CoalescingDedupeStore`` (``_coalescing``) sends the calls of concurrently
running events to either as batched round trips; its errors are ``errors``.
"""

from consumers.dedupe._coalescing import CoalescingDedupeStore
from consumers.dedupe._factory import open_dedupe_store
from consumers.dedupe._memory import MemoryDedupeStore
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
    "CoalescingDedupeStore",
    "DedupeStore",
    "DedupeStoreBackendError",
    "DedupeStoreError",
    "DedupeStoreNotStarted",
    "DedupeStoreUnavailable",
    "MemoryDedupeStore",
    "RedisDedupeStore",
    "open_dedupe_store",
]
