"""Specification of the dedupe stores' batch calls and of the runtime's call coalescing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest

from consumers.dedupe import (
    BatchDedupeStore,
    CoalescingDedupeStore,
    MemoryDedupeStore,
    RedisDedupeStore,
)

StoreFactory = Callable[[], Awaitable[BatchDedupeStore]]


@pytest.fixture(params=["redis", "memory"])
async def make_store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[StoreFactory]:
    """Builds started stores of one backend (memory: one shared store, as in one process)."""
    stores: list[BatchDedupeStore] = []

    async def make() -> BatchDedupeStore:
        if request.param == "memory" and stores:
            return stores[0]
        store: BatchDedupeStore = (
            RedisDedupeStore(redis_url, namespace=namespace)
            if request.param == "redis"
            else MemoryDedupeStore()
        )
        await store.start()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.stop()


async def test_claim_many_grants_only_unclaimed_ids(make_store: StoreFactory) -> None:
    """claim_many answers per id, in order, refusing ids claimed before."""
    first, second = await make_store(), await make_store()
    assert await first.claim("held") is True
    assert await second.claim_many(["a", "held", "b"]) == [True, False, True]


async def test_claim_many_grants_a_repeated_id_once(make_store: StoreFactory) -> None:
    """An id appearing twice in one batch is granted to its first occurrence only."""
    store = await make_store()
    assert await store.claim_many(["x", "x"]) == [True, False]


async def test_mark_published_many_makes_ids_published(make_store: StoreFactory) -> None:
    """After mark_published_many, is_published_many reports exactly those ids as published."""
    store = await make_store()
    await store.claim_many(["p1", "p2", "u1"])
    await store.mark_published_many(["p1", "p2"])
    assert await store.is_published_many(["p1", "u1", "p2", "never"]) == [
        True,
        False,
        True,
        False,
    ]


async def test_published_ids_cannot_be_claimed_in_a_batch(make_store: StoreFactory) -> None:
    """claim_many refuses ids whose result was published, as claim does."""
    first, second = await make_store(), await make_store()
    assert await first.claim("done") is True
    await first.mark_published("done")
    assert await second.claim_many(["done"]) == [False]


async def test_batch_calls_take_ids_of_any_characters(make_store: StoreFactory) -> None:
    """Ids travel through the batch calls intact, whatever characters they hold."""
    first, second = await make_store(), await make_store()
    ids = ['q"uote', "back\\slash", "new\nline", "ünï cödé", "[]", "", "x" * 300]
    assert await first.claim_many(ids) == [True] * len(ids)
    assert await second.claim_many(ids) == [False] * len(ids)
    await first.mark_published_many(ids[:3])
    assert await second.is_published_many(ids) == [True] * 3 + [False] * (len(ids) - 3)


async def test_releasing_one_id_of_a_claimed_batch_frees_only_that_id(
    make_store: StoreFactory,
) -> None:
    """Ids claimed together are still released (and re-claimable) one by one."""
    first, second = await make_store(), await make_store()
    assert await first.claim_many(["r1", "r2", "r3"]) == [True, True, True]
    await first.release("r2")
    assert await second.claim_many(["r1", "r2", "r3"]) == [False, True, False]


class _CountingStore(MemoryDedupeStore):
    """A memory store that records the size of every batch call it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.claim_batches: list[int] = []

    async def claim_many(self, event_ids: Sequence[str]) -> list[bool]:
        self.claim_batches.append(len(event_ids))
        await asyncio.sleep(0)
        return await super().claim_many(event_ids)


async def test_concurrent_claims_reach_the_store_in_one_batch() -> None:
    """Claims made in the same loop iteration are sent to the store as one batch."""
    inner = _CountingStore()
    store = CoalescingDedupeStore(inner)
    await store.start()
    results = await asyncio.gather(*(store.claim(f"e{i}") for i in range(50)))
    assert results == [True] * 50
    assert inner.claim_batches == [50]


async def test_batches_are_capped_in_size() -> None:
    """No batch exceeds max_batch ids; the rest follow in further batches."""
    inner = _CountingStore()
    store = CoalescingDedupeStore(inner, max_batch=20, max_in_flight=1)
    await store.start()
    await asyncio.gather(*(store.claim(f"e{i}") for i in range(50)))
    assert inner.claim_batches == [20, 20, 10]


async def test_a_failed_batch_fails_every_caller_in_it() -> None:
    """When the store refuses a batch, each coalesced call raises the store's error."""
    inner = RedisDedupeStore("redis://127.0.0.1:1/0")  # never started: it refuses calls
    store = CoalescingDedupeStore(inner)
    outcomes = await asyncio.gather(store.claim("a"), store.claim("b"), return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["DedupeStoreNotStarted"] * 2


async def test_redis_store_waits_for_a_connection_beyond_its_pool(
    redis_url: str, namespace: str
) -> None:
    """More concurrent calls than pooled connections wait for one instead of failing."""
    store = RedisDedupeStore(redis_url, namespace=namespace, max_connections=2)
    await store.start()
    try:
        results = await asyncio.gather(*(store.claim(f"c{i}") for i in range(40)))
    finally:
        await store.stop()
    assert results == [True] * 40
