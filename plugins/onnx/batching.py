"""Dynamic micro-batching: concurrent callers' items run through a model together.

Why it exists: one run of a batch of 32 costs far less than 32 runs of one (the weights are
read once, the matrix kernels work on wide operands), so items arriving together from many
requests (or one request's list) are gathered into batches before they reach the model.

Guarantees:
- A batch starts when it holds `max_batch` items, or `max_wait_ms` after its OLDEST item was
  queued, whichever comes first; an item never waits for a batch to fill past that.
- Batches of one model run one at a time, in arrival order; while one runs, the next gathers.
- The queue is bounded: an item that would make it longer than `max_queue` is refused at once
  with `OnnxOverloaded` (retriable, HTTP 429) carrying a Retry-After estimate from the recent
  time per item. One request's items are admitted all together or not at all, and an empty
  queue admits any request, so a request larger than the queue is still served when idle.
- A failure of one item (the batch function returns an error in its slot) fails that item
  alone; only an error raised by the batch function itself fails every item of that batch.
- A caller cancelled while its item waits has it removed: it never reaches the model.
- `stop()` refuses new items (`OnnxStopped`, retriable), lets the queued ones finish, and
  returns when the worker has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

from plugins.onnx.errors import OnnxError, OnnxInferenceError, OnnxOverloaded, OnnxStopped
from plugins.onnx.settings import BatchSettings

__all__ = ["BatchStats", "MicroBatcher", "RunBatch"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
# A batch's items -> one result or one error per item, in the same order.
RunBatch = Callable[[Sequence[ItemT]], Awaitable[Sequence[ResultT | OnnxError]]]

# Until a batch has been timed, Retry-After says this.
_FIRST_ESTIMATE_S = 1.0
# Weight of the newest batch in the moving average of the time per item.
_SMOOTHING = 0.2


@dataclass(slots=True, eq=False)
class _Pending(Generic[ItemT, ResultT]):
    item: ItemT
    future: asyncio.Future[ResultT]
    queued_at: float


@dataclass(slots=True)
class BatchStats:
    """Counts since start: what a benchmark or a test reads to see batches form."""

    batches: int = 0
    items: int = 0
    refused: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list)  # the last batches' sizes, newest last

    def record(self, size: int) -> None:
        self.batches += 1
        self.items += size
        self.largest = max(self.largest, size)
        self.sizes.append(size)
        del self.sizes[:-256]


class MicroBatcher(Generic[ItemT, ResultT]):
    """Gathers items for one model into batches and runs them with `run_batch`."""

    def __init__(
        self, name: str, run_batch: RunBatch[ItemT, ResultT], settings: BatchSettings
    ) -> None:
        self.name = name
        self._run = run_batch
        self._max_batch = settings.max_batch
        self._max_wait_s = settings.max_wait_ms / 1000
        self._max_queue = settings.max_queue
        self._queue: deque[_Pending[ItemT, ResultT]] = deque()
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._per_item_s: float | None = None
        self.stats = BatchStats()
        self._log = structlog.get_logger("plugins.onnx.batching")

    async def start(self) -> None:
        if self._worker is None:
            self._closing = False
            self._worker = asyncio.create_task(self._work(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        self._closing = True
        self._arrived.set()
        if self._worker is not None:
            worker, self._worker = self._worker, None
            await worker

    async def __aenter__(self) -> MicroBatcher[ItemT, ResultT]:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def retry_after_s(self) -> float:
        """When the queue, as it is now, will have been worked off."""
        if self._per_item_s is None:
            return _FIRST_ESTIMATE_S
        return max(0.001, (len(self._queue) + self._max_batch) * self._per_item_s)

    async def submit(self, item: ItemT) -> ResultT:
        """The result for `item`, once the batch it joined has run."""
        return (await self.submit_many((item,)))[0]

    async def submit_many(self, items: Sequence[ItemT]) -> list[ResultT]:
        """The results for `items` (admitted together), in order; the first failure raises."""
        if self._closing or self._worker is None:
            raise OnnxStopped(f"model {self.name!r} is not running")
        if self._queue and len(self._queue) + len(items) > self._max_queue:
            self.stats.refused += len(items)
            raise OnnxOverloaded(
                f"model {self.name!r} is overloaded: {len(self._queue)} items are waiting "
                f"(at most {self._max_queue})",
                retry_after_s=self.retry_after_s(),
            )
        loop = asyncio.get_running_loop()
        now = loop.time()
        pending = [_Pending[ItemT, ResultT](i, loop.create_future(), now) for i in items]
        self._queue.extend(pending)
        self._arrived.set()
        try:
            return list(await asyncio.gather(*(p.future for p in pending)))
        except BaseException:
            # Cancelled, or one item failed: the siblings still waiting leave the queue.
            for p in pending:
                p.future.cancel()  # no-op once done (gather cancels them when it is)
            if any(p in self._queue for p in pending):
                self._queue = deque(p for p in self._queue if not p.future.cancelled())
            raise

    async def _work(self) -> None:
        while True:
            batch = await self._gather()
            if batch is None:
                return
            await self._run_one(batch)

    async def _gather(self) -> list[_Pending[ItemT, ResultT]] | None:
        """The next batch, or None once stopping with nothing left."""
        loop = asyncio.get_running_loop()
        while not self._queue:
            if self._closing:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        deadline = self._queue[0].queued_at + self._max_wait_s
        while len(self._queue) < self._max_batch and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            if not self._queue:  # every waiting caller was cancelled
                return await self._gather()
        batch: list[_Pending[ItemT, ResultT]] = []
        while self._queue and len(batch) < self._max_batch:
            pending = self._queue.popleft()
            if not pending.future.done():
                batch.append(pending)
        return batch

    async def _run_one(self, batch: list[_Pending[ItemT, ResultT]]) -> None:
        if not batch:
            return
        started = time.perf_counter()
        try:
            results = await self._run([p.item for p in batch])
            if len(results) != len(batch):
                raise OnnxInferenceError(
                    f"model {self.name!r} returned {len(results)} results for {len(batch)} items"
                )
        except Exception as exc:
            error = exc if isinstance(exc, OnnxError) else OnnxInferenceError(str(exc))
            self._log.warning("onnx_batch_failed", model=self.name, size=len(batch), error=str(exc))
            results = [error] * len(batch)
        elapsed = (time.perf_counter() - started) / len(batch)
        self._per_item_s = (
            elapsed
            if self._per_item_s is None
            else (1 - _SMOOTHING) * self._per_item_s + _SMOOTHING * elapsed
        )
        self.stats.record(len(batch))
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
