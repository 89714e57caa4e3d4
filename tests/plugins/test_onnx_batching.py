"""The micro-batcher: batches form under concurrency, never wait past max_wait, refuse overload,
and fail one bad item alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from plugins.onnx.batching import MicroBatcher
from plugins.onnx.errors import OnnxBadInput, OnnxError, OnnxOverloaded, OnnxStopped
from plugins.onnx.settings import BatchSettings


class Model:
    """A batch function that records each batch it ran and can be held until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def __call__(self, items: Sequence[int]) -> list[int | OnnxError]:
        self.batches.append(list(items))
        self.entered.set()
        await self.gate.wait()
        return [
            OnnxBadInput(f"item {i} is negative", param="input") if i < 0 else i * 10 for i in items
        ]


def _batcher(model: Model, **settings: float) -> MicroBatcher[int, int]:
    return MicroBatcher[int, int]("tiny", model, BatchSettings(**settings))  # type: ignore[arg-type]


async def test_concurrent_items_share_batches() -> None:
    """32 concurrent callers are served by four full batches, each getting its own result."""
    model = Model()
    async with _batcher(model, max_batch=8, max_wait_ms=60_000) as batcher:
        results = await asyncio.gather(*(batcher.submit(i) for i in range(32)))
    assert results == [i * 10 for i in range(32)]
    assert [len(b) for b in model.batches] == [8, 8, 8, 8]


async def test_a_lone_item_does_not_wait_for_a_full_batch() -> None:
    """With a large max_batch, one item still runs, alone, once max_wait has passed."""
    model = Model()
    async with _batcher(model, max_batch=1000, max_wait_ms=1) as batcher:
        assert await batcher.submit(4) == 40
    assert model.batches == [[4]]


async def test_items_arriving_while_a_batch_runs_form_the_next_batch() -> None:
    """Items queued during a run start together as soon as it ends, however long they waited."""
    model = Model()
    async with _batcher(model, max_batch=16, max_wait_ms=0) as batcher:
        model.gate.clear()
        first = asyncio.ensure_future(batcher.submit(0))
        await model.entered.wait()
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0)
        model.gate.set()
        await asyncio.gather(first, *rest)
    assert model.batches == [[0], [1, 2, 3, 4, 5]]


async def test_a_full_queue_refuses_with_a_retriable_429() -> None:
    """Beyond max_queue waiting items, a caller gets OnnxOverloaded with a Retry-After."""
    model = Model()
    async with _batcher(model, max_batch=2, max_wait_ms=0, max_queue=4) as batcher:
        model.gate.clear()
        running = asyncio.ensure_future(batcher.submit(0))
        await model.entered.wait()
        waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 5)]
        await asyncio.sleep(0)
        with pytest.raises(OnnxOverloaded) as refused:
            await batcher.submit(99)
        assert refused.value.retriable and refused.value.status_code == 429
        assert refused.value.retry_after_s is not None and refused.value.retry_after_s > 0
        model.gate.set()
        await asyncio.gather(running, *waiting)
    assert batcher.stats.refused == 1
    assert 99 not in [i for b in model.batches for i in b]


async def test_an_empty_queue_admits_a_request_larger_than_the_queue() -> None:
    """One request of more items than max_queue is served when nothing else waits."""
    model = Model()
    async with _batcher(model, max_batch=4, max_wait_ms=0, max_queue=2) as batcher:
        assert await batcher.submit_many(list(range(10))) == [i * 10 for i in range(10)]


async def test_a_bad_item_fails_alone() -> None:
    """An item whose slot holds an error fails; the others of its batch succeed."""
    model = Model()
    async with _batcher(model, max_batch=4, max_wait_ms=60_000) as batcher:
        results = await asyncio.gather(
            *(batcher.submit(i) for i in (1, -1, 2, 3)), return_exceptions=True
        )
    assert results[0] == 10 and results[2:] == [20, 30]
    assert isinstance(results[1], OnnxBadInput) and results[1].param == "input"
    assert model.batches == [[1, -1, 2, 3]]


async def test_a_cancelled_caller_leaves_the_queue() -> None:
    """An item whose caller was cancelled while waiting never reaches the model."""
    model = Model()
    async with _batcher(model, max_batch=8, max_wait_ms=0) as batcher:
        model.gate.clear()
        running = asyncio.ensure_future(batcher.submit(0))
        await model.entered.wait()
        doomed = asyncio.ensure_future(batcher.submit(7))
        kept = asyncio.ensure_future(batcher.submit(8))
        await asyncio.sleep(0)
        doomed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await doomed
        assert batcher.queued == 1
        model.gate.set()
        await asyncio.gather(running, kept)
    assert model.batches == [[0], [8]]


async def test_a_batch_function_that_raises_fails_only_its_batch() -> None:
    """An exception of the whole batch reaches its callers; the next batch is served."""
    calls = 0

    async def flaky(items: Sequence[int]) -> list[int | OnnxError]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("kernel failed")
        return list(items)

    async with MicroBatcher[int, int]("flaky", flaky, BatchSettings(max_wait_ms=0)) as batcher:
        with pytest.raises(OnnxError, match="kernel failed"):
            await batcher.submit(1)
        assert await batcher.submit(2) == 2


async def test_stop_finishes_queued_items_and_refuses_new_ones() -> None:
    """After stop(), what was queued has its result and a new item gets OnnxStopped."""
    model = Model()
    batcher = _batcher(model, max_batch=2, max_wait_ms=0)
    await batcher.start()
    queued = [asyncio.ensure_future(batcher.submit(i)) for i in range(5)]
    await asyncio.sleep(0)
    await batcher.stop()
    assert [await q for q in queued] == [0, 10, 20, 30, 40]
    with pytest.raises(OnnxStopped) as stopped:
        await batcher.submit(1)
    assert stopped.value.retriable
