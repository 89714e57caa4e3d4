"""In-process dedupe store for when Redis is absent.

Why it exists: a consumer must keep running (and still suppress the common case, a redelivery
to the same process) when Redis is down or not configured. It follows the same state machine
as the Redis store, but only within one process, and it is bounded: the least recently used
ids are forgotten first, so memory stays flat under an unbounded stream of event ids.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from consumers.dedupe._protocol import CLAIM_TTL_S, PUBLISHED_TTL_S
from consumers.dedupe.errors import DedupeStoreNotStarted
from consumers.errors import ConfigurationError

__all__ = ["MemoryDedupeStore"]


@dataclass(frozen=True, slots=True)
class _Record:
    published: bool
    token: str
    expires_at: float


class MemoryDedupeStore:
    """``DedupeStore`` held in one process: LRU-bounded to ``max_entries`` ids, with TTLs."""

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        claim_ttl_s: float = CLAIM_TTL_S,
        published_ttl_s: float = PUBLISHED_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ConfigurationError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._claim_ttl_s = claim_ttl_s
        self._published_ttl_s = published_ttl_s
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._held: dict[str, str] = {}
        self._started = False

    async def __aenter__(self) -> MemoryDedupeStore:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        self._started = False

    def __len__(self) -> int:
        return len(self._records)

    def _live(self, event_id: str) -> _Record | None:
        if not self._started:
            raise DedupeStoreNotStarted("MemoryDedupeStore used before start() or after stop()")
        record = self._records.get(event_id)
        if record is None:
            return None
        if record.expires_at <= self._clock():
            del self._records[event_id]
            self._held.pop(event_id, None)
            return None
        self._records.move_to_end(event_id)
        return record

    def _put(self, event_id: str, record: _Record) -> None:
        self._records[event_id] = record
        self._records.move_to_end(event_id)
        while len(self._records) > self._max_entries:
            evicted, _ = self._records.popitem(last=False)
            self._held.pop(evicted, None)

    async def claim(self, event_id: str) -> bool:
        if self._live(event_id) is not None:
            return False
        token = secrets.token_hex(8)
        self._put(event_id, _Record(False, token, self._clock() + self._claim_ttl_s))
        self._held[event_id] = token
        return True

    async def claim_many(self, event_ids: Sequence[str]) -> list[bool]:
        return [await self.claim(event_id) for event_id in event_ids]

    async def mark_published_many(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            await self.mark_published(event_id)

    async def is_published_many(self, event_ids: Sequence[str]) -> list[bool]:
        return [await self.is_published(event_id) for event_id in event_ids]

    async def mark_published(self, event_id: str) -> None:
        current = self._live(event_id)
        token = self._held.pop(event_id, "unclaimed")
        if current is not None and current.published:
            lost, already_published = True, True
        else:
            lost = current is None or current.token != token
            already_published = False
            self._put(event_id, _Record(True, token, self._clock() + self._published_ttl_s))
        if lost:
            structlog.get_logger(__name__).warning(
                "dedupe.claim_lost", event_id=event_id, already_published=already_published
            )

    async def release(self, event_id: str) -> None:
        current = self._live(event_id)
        token = self._held.pop(event_id, None)
        if current is not None and not current.published and current.token == token:
            del self._records[event_id]

    async def is_published(self, event_id: str) -> bool:
        return (await self.published_token(event_id)) is not None

    async def published_token(self, event_id: str) -> str | None:
        """Token of the claim whose publish was recorded first, or None if not published."""
        current = self._live(event_id)
        return current.token if current is not None and current.published else None

    def holder_token(self, event_id: str) -> str | None:
        """Token of this store's current claim, e.g. to attach to the published result."""
        return self._held.get(event_id)
