"""Caps concurrent calls into the shared dedupe store.

Why: hundreds of events may be in flight at once, and a Redis client's connection pool refuses
(rather than queues) calls beyond its size; queueing here keeps the store's connection count
bounded and turns a burst into a short wait instead of errors.
"""

from __future__ import annotations

import asyncio

from consumers.dedupe import DedupeStore

__all__ = ["BoundedDedupeStore"]


class BoundedDedupeStore:
    """A DedupeStore that lets at most `limit` calls run at once against `inner`."""

    def __init__(self, inner: DedupeStore, *, limit: int = 64) -> None:
        self._inner = inner
        self._gate = asyncio.Semaphore(limit)

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def claim(self, event_id: str) -> bool:
        async with self._gate:
            return await self._inner.claim(event_id)

    async def mark_published(self, event_id: str) -> None:
        async with self._gate:
            await self._inner.mark_published(event_id)

    async def release(self, event_id: str) -> None:
        async with self._gate:
            await self._inner.release(event_id)

    async def is_published(self, event_id: str) -> bool:
        async with self._gate:
            return await self._inner.is_published(event_id)
