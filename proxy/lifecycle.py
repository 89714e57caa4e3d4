"""Starting and stopping the gateway's own ASGI wrappers with the server that runs them.

Why it exists: the wrappers ahead of LiteLLM's app (the artifact links, the media routes, the
embeddings) hold resources of their own (providers, a store sweep, a job sweep) that live as
long as the server. Each learns of the server's start and stop from the lifespan messages it
passes on (`with_lifespan`), and the periodic sweeps run as a `Periodic`, written once here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.asgi import Receive

__all__ = ["Periodic", "with_lifespan"]


def with_lifespan(
    receive: Receive,
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
) -> Receive:
    """`receive` that awaits `start` on the server's `lifespan.startup` message and `stop` on
    its `lifespan.shutdown`, each before handing the message on to the wrapped app."""

    async def wrapped() -> Any:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await start()
        elif message["type"] == "lifespan.shutdown":
            await stop()
        return message

    return wrapped


class Periodic:
    """Awaits `work` (one round) at once, then `interval_s` seconds after each round ends, in a
    task of its own, from `start()` until `stop()`.

    A round handles its own failures (logging them leaves the next round to try again): an
    error escaping it ends the task.
    """

    def __init__(self, work: Callable[[], Awaitable[None]], interval_s: float) -> None:
        self._work = work
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the rounds (once: a second start while running does nothing)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Cancel the rounds and wait until the task has ended (nothing when not started)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._work()
            await asyncio.sleep(self._interval_s)
