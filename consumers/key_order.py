"""Per-key ordering for concurrently processed events.

Why: events of one partition run concurrently, but events that share a key (a product, a job)
must take effect in the order they were produced. `KeySequencer.run` chains work per key:
each call waits for the previous call with the same key to finish; different keys never wait
for each other. A key of None means "no ordering required".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

__all__ = ["KeySequencer"]

T = TypeVar("T")


class KeySequencer:
    """Runs callables one after another per key, concurrently across keys."""

    def __init__(self) -> None:
        self._tails: dict[Hashable, asyncio.Future[None]] = {}

    def __len__(self) -> int:
        """Keys with work queued or running."""
        return len(self._tails)

    def hold(self, key: Hashable) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        """Queue work for `key` now, run by the caller: (what to wait for first, the hold).

        Unlike `run`, the place in the queue is taken synchronously, so work scheduled in
        one go keeps its order even when it starts later. The caller must `release`.
        """
        previous = self._tails.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = done
        return previous, done

    def release(self, key: Hashable, held: asyncio.Future[None]) -> None:
        if not held.done():
            held.set_result(None)
        if self._tails.get(key) is held:
            del self._tails[key]

    async def run(self, key: Hashable | None, work: Callable[[], Awaitable[T]]) -> T:
        if key is None:
            return await work()
        previous = self._tails.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = done
        try:
            if previous is not None:
                # asyncio.wait does not cancel `previous` if we are cancelled while waiting.
                await asyncio.wait([previous])
            return await work()
        finally:
            done.set_result(None)
            if self._tails.get(key) is done:
                del self._tails[key]
