"""The dedupe store contract and the exact guarantee it gives.

Why this exists: Kafka redelivers events (rebalances, crashes before the offset commit), and a
redelivered event must not publish its result twice. The runtime brackets each publish::

    if await store.claim(event_id):          # else: already published / in flight elsewhere
        try:
            await publish(result)             # keyed by event_id, idempotent producer
        except Exception:
            await store.release(event_id)     # let a redelivery try again
            raise
        await store.mark_published(event_id)

State of one event id, held in ONE key so every transition is a single atomic step::

    (absent) --claim--> claimed(token, expires after claim_ttl_s)
    claimed(token) --release by token holder--> (absent)
    claimed(token) --expiry--> (absent)
    claimed(any) / (absent) --mark_published(token)--> published(token, expires after
                                                        published_ttl_s)
    published(...) -- nothing but expiry changes it

Each claim carries a random token known only to the store instance that took it. Because
"published" is written with the holder's token, in the same key as the claim:
- a claim can never be taken over a published record (SET NX fails on any value);
- a holder whose claim expired cannot release (delete) a newer holder's claim;
- mark_published() tells whether the caller still held its claim; when it did not, the store
  logs ``dedupe.claim_lost`` (a duplicate publish may have happened), and a published record
  written first is never replaced, so it names the claim whose result counts.

Tokens identify the latest claim a store INSTANCE took: two tasks of one process that both
hold the same id (possible only after the first claim expired) are not told apart, and a call
to mark_published() without a live claim of this instance is recorded with the token
``unclaimed`` and logged as a lost claim.

Guarantee, precisely: a result for an event id is published at most once while its
published record lives (published_ttl_s), PROVIDED every holder (1) finishes publish and
mark_published() within claim_ttl_s of its claim, and (2) does not stop between the broker
acknowledging the publish and mark_published() completing.

Not guaranteed, and why the runtime also keys results by event id and uses an idempotent
producer so downstream readers can drop repeats:
- a crash (or a store outage) between publish and mark_published(): the claim expires, a
  redelivery claims again and publishes a second time;
- a handler slower than claim_ttl_s: another consumer may claim and publish concurrently;
- Redis failover with asynchronous replication can lose the latest writes;
- the in-memory fallback only deduplicates within one process and forgets evicted ids.
True exactly-once across Kafka and this store would need Kafka transactions
(consume-transform-produce with offsets committed in the producer's transaction); this store
does not attempt that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["CLAIM_TTL_S", "PUBLISHED_TTL_S", "BatchDedupeStore", "DedupeStore"]

CLAIM_TTL_S = 300.0
PUBLISHED_TTL_S = 7 * 24 * 3600.0


class DedupeStore(Protocol):
    """Claims and published markers per event id; see the module docstring for guarantees."""

    async def start(self) -> None:
        """Connect; idempotent. Raises DedupeStoreUnavailable when the store is unreachable."""
        ...

    async def stop(self) -> None:
        """Release connections; idempotent."""
        ...

    async def claim(self, event_id: str) -> bool:
        """True if the caller may publish: no record, or only an expired claim, exists.

        False when the result was already published or a live claim is held elsewhere.
        """
        ...

    async def mark_published(self, event_id: str) -> None:
        """Durably record that the result for ``event_id`` was published."""
        ...

    async def release(self, event_id: str) -> None:
        """Give up this store's claim (the handler failed); a no-op if no longer held."""
        ...

    async def is_published(self, event_id: str) -> bool:
        """True while a published record exists for ``event_id``."""
        ...


@runtime_checkable
class BatchDedupeStore(DedupeStore, Protocol):
    """A store that also answers many ids in one round trip (same semantics per id)."""

    async def claim_many(self, event_ids: Sequence[str]) -> list[bool]:
        """`claim` for each id, in order."""
        ...

    async def mark_published_many(self, event_ids: Sequence[str]) -> None:
        """`mark_published` for each id."""
        ...

    async def is_published_many(self, event_ids: Sequence[str]) -> list[bool]:
        """`is_published` for each id, in order."""
        ...
