"""Choose the dedupe backend at start-up.

Why a factory: Redis is optional infrastructure. A consumer without it still runs, with
weaker (per-process) deduplication, and says so once in its logs instead of failing to start.
"""

from __future__ import annotations

import structlog

from consumers.dedupe._memory import MemoryDedupeStore
from consumers.dedupe._protocol import CLAIM_TTL_S, PUBLISHED_TTL_S, DedupeStore
from consumers.dedupe._redis import RedisDedupeStore
from consumers.dedupe.errors import DedupeStoreError

__all__ = ["open_dedupe_store"]


async def open_dedupe_store(
    url: str | None,
    *,
    namespace: str,
    fallback_max_entries: int = 100_000,
    claim_ttl_s: float = CLAIM_TTL_S,
    published_ttl_s: float = PUBLISHED_TTL_S,
    connect_timeout_s: float = 1.0,
) -> DedupeStore:
    """Return a STARTED store: Redis at ``url`` if reachable, else a bounded in-memory one.

    The caller owns the returned store and must ``await store.stop()``.
    """
    if url is not None:
        store = RedisDedupeStore(
            url,
            namespace=namespace,
            claim_ttl_s=claim_ttl_s,
            published_ttl_s=published_ttl_s,
            connect_timeout_s=connect_timeout_s,
        )
        try:
            await store.start()
        except DedupeStoreError as exc:
            # The URL may carry a password; only the error type and message (which redis-py
            # builds from host and port) are logged.
            structlog.get_logger(__name__).warning(
                "dedupe.redis_unavailable_using_memory",
                error=type(exc.__cause__ or exc).__name__,
                detail="deduplication is per-process until restart with Redis reachable",
            )
        else:
            return store
    else:
        structlog.get_logger(__name__).warning(
            "dedupe.no_redis_configured_using_memory",
            detail="deduplication is per-process",
        )
    memory = MemoryDedupeStore(
        max_entries=fallback_max_entries,
        claim_ttl_s=claim_ttl_s,
        published_ttl_s=published_ttl_s,
    )
    await memory.start()
    return memory
