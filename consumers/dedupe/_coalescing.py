"""Coalesces the dedupe calls of concurrently running events into batched round trips.

Why: every event claims its id before publishing and marks it published after, and hundreds
of events are in flight at once. One Redis round trip per call made the store the runtime's
bottleneck; calls made in the same event-loop tick (single ids, and the batches of every
partition's group commit) are instead sent as one pipeline / script per kind (claim,
mark_published, is_published), with the same per-id semantics. Batches are capped in size,
and at most `max_in_flight` of a kind run at once, within the store's connection pool.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from consumers.dedupe._protocol import BatchDedupeStore, DedupeStore

__all__ = ["CoalescingDedupeStore"]

_Batch = Callable[[Sequence[str]], Awaitable[Any]]


class _Coalescer:
    """Queues groups of ids of one call kind and sends them in batches ("group commit").

    At most `max_in_flight` batches of a kind are outstanding: while they are, new calls
    queue up and go out together when one returns. Idle, a call goes out on the next loop
    iteration; under load, batches grow with the load instead of the round trips. A group
    (one caller's ids) is never split: a batch holds whole groups up to `max_batch` ids, or
    one larger group alone.
    """

    def __init__(self, call: _Batch, max_batch: int, max_in_flight: int) -> None:
        self._call = call
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[tuple[Sequence[str], asyncio.Future[Any]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flush_pending = False

    def submit(self, event_ids: Sequence[str]) -> asyncio.Future[Any]:
        """The future of the call's answers for `event_ids` (a list, or None for marks)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((event_ids, future))
        self._schedule_flush(loop)
        return future

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._flush_pending and self._queue and len(self._tasks) < self._max_in_flight:
            self._flush_pending = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        while self._queue and len(self._tasks) < self._max_in_flight:
            batch = [self._queue.popleft()]
            size = len(batch[0][0])
            while self._queue and size + len(self._queue[0][0]) <= self._max_batch:
                size += len(self._queue[0][0])
                batch.append(self._queue.popleft())
            task = asyncio.ensure_future(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._schedule_flush(task.get_loop())

    async def _run(self, batch: list[tuple[Sequence[str], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._call([event_id for ids, _ in batch for event_id in ids])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            # Cancelled (loop shutdown): callers must not wait for an answer that never comes.
            for _, future in batch:
                future.cancel()
            raise
        position = 0
        for ids, future in batch:
            answers = None if results is None else list(results[position : position + len(ids)])
            position += len(ids)
            if not future.done():
                future.set_result(answers)


class CoalescingDedupeStore:
    """A DedupeStore whose concurrent calls reach `inner` in batches."""

    def __init__(self, inner: DedupeStore, *, max_batch: int = 500, max_in_flight: int = 2) -> None:
        self._inner = inner
        batch: BatchDedupeStore | _Fallback = (
            inner if isinstance(inner, BatchDedupeStore) else _Fallback(inner)
        )
        self._batch = batch
        self._max_batch = max_batch
        self._claims = _Coalescer(batch.claim_many, max_batch, max_in_flight)
        self._marks = _Coalescer(batch.mark_published_many, max_batch, max_in_flight)
        self._lookups = _Coalescer(batch.is_published_many, max_batch, max_in_flight)

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def claim(self, event_id: str) -> bool:
        return bool((await self._claims.submit([event_id]))[0])

    async def mark_published(self, event_id: str) -> None:
        await self._marks.submit([event_id])

    async def release(self, event_id: str) -> None:
        # Rare (a failed publish); not worth batching.
        await self._inner.release(event_id)

    async def is_published(self, event_id: str) -> bool:
        return bool((await self._lookups.submit([event_id]))[0])

    # A caller's batch joins the other callers' (every partition's group commit asks at once),
    # in max_batch chunks.

    async def claim_many(self, event_ids: Sequence[str]) -> list[bool]:
        return [bool(found) for found in await self._chunked(self._claims, event_ids)]

    async def mark_published_many(self, event_ids: Sequence[str]) -> None:
        await self._chunked(self._marks, event_ids)

    async def is_published_many(self, event_ids: Sequence[str]) -> list[bool]:
        return [bool(found) for found in await self._chunked(self._lookups, event_ids)]

    async def _chunked(self, coalescer: _Coalescer, event_ids: Sequence[str]) -> list[Any]:
        size = self._max_batch
        chunks = [coalescer.submit(event_ids[i : i + size]) for i in range(0, len(event_ids), size)]
        answers: list[Any] = []
        for chunk in await asyncio.gather(*chunks):
            answers.extend(chunk or ())
        return answers


class _Fallback:
    """Batch calls for a store without batch methods: its single calls, concurrently."""

    def __init__(self, inner: DedupeStore) -> None:
        self._inner = inner

    async def claim_many(self, event_ids: Sequence[str]) -> list[bool]:
        return list(await asyncio.gather(*(self._inner.claim(i) for i in event_ids)))

    async def mark_published_many(self, event_ids: Sequence[str]) -> None:
        await asyncio.gather(*(self._inner.mark_published(i) for i in event_ids))

    async def is_published_many(self, event_ids: Sequence[str]) -> list[bool]:
        return list(await asyncio.gather(*(self._inner.is_published(i) for i in event_ids)))
