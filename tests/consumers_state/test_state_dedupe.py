"""Specification of the dedupe stores: claims, published records, expiry, and the fallback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from structlog.testing import capture_logs

from consumers.dedupe import (
    DedupeStore,
    DedupeStoreBackendError,
    DedupeStoreNotStarted,
    DedupeStoreUnavailable,
    MemoryDedupeStore,
    RedisDedupeStore,
    open_dedupe_store,
)
from consumers.dedupe._redis import _translate

from .conftest import FakeClock

StoreFactory = Callable[..., Awaitable[DedupeStore]]


@pytest.fixture(params=["redis", "memory"])
async def make_store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[StoreFactory]:
    """Builds started stores of one backend; each call is a separate store (a 'process')."""
    stores: list[DedupeStore] = []
    shared_memory: list[MemoryDedupeStore] = []

    async def make(**kwargs: float) -> DedupeStore:
        store: DedupeStore
        if request.param == "redis":
            store = RedisDedupeStore(redis_url, namespace=namespace, **kwargs)
        elif shared_memory:
            # One process holds one memory store; several callers share it.
            return shared_memory[0]
        else:
            store = MemoryDedupeStore(**kwargs)
            shared_memory.append(store)
        await store.start()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.stop()


async def test_first_claim_wins_and_second_is_refused(make_store: StoreFactory) -> None:
    """Only the first claim of an event id is granted while it is held."""
    first, second = await make_store(), await make_store()
    assert await first.claim("evt-1") is True
    assert await second.claim("evt-1") is False


async def test_published_event_is_never_claimed_again(make_store: StoreFactory) -> None:
    """After mark_published every claim is refused and is_published reports it."""
    first, second = await make_store(), await make_store()
    assert await first.claim("evt-1")
    assert await first.is_published("evt-1") is False
    await first.mark_published("evt-1")
    assert await first.is_published("evt-1") is True
    assert await second.claim("evt-1") is False
    assert await first.claim("evt-1") is False


async def test_release_lets_a_later_claim_win(make_store: StoreFactory) -> None:
    """A released claim (failed handler) lets a redelivery claim the event again."""
    first, second = await make_store(), await make_store()
    assert await first.claim("evt-1")
    await first.release("evt-1")
    assert await second.claim("evt-1") is True


async def test_release_never_removes_a_published_record(make_store: StoreFactory) -> None:
    """Releasing after publishing leaves the published record in place."""
    store = await make_store()
    assert await store.claim("evt-1")
    await store.mark_published("evt-1")
    await store.release("evt-1")
    assert await store.is_published("evt-1") is True


async def test_publishing_without_a_live_claim_is_recorded_and_logged(
    make_store: StoreFactory,
) -> None:
    """mark_published without holding a claim still records the publish and logs claim_lost."""
    store = await make_store()
    with capture_logs() as logs:
        await store.mark_published("evt-1")
    assert [e["event"] for e in logs] == ["dedupe.claim_lost"]
    assert logs[0]["already_published"] is False
    assert await store.is_published("evt-1") is True


async def test_concurrent_claims_have_exactly_one_winner(make_store: StoreFactory) -> None:
    """Fifty simultaneous claims from two stores grant exactly one."""
    first, second = await make_store(), await make_store()
    results = await asyncio.gather(
        *(store.claim("evt-race") for _ in range(25) for store in (first, second))
    )
    assert results.count(True) == 1
    assert len(results) == 50


async def test_redis_expired_claim_can_be_reclaimed(redis_url: str, namespace: str) -> None:
    """A claim whose holder went silent expires after claim_ttl_s and can be claimed again."""
    async with (
        RedisDedupeStore(redis_url, namespace=namespace, claim_ttl_s=0.15) as first,
        RedisDedupeStore(redis_url, namespace=namespace) as second,
    ):
        assert await first.claim("evt-1")
        assert await second.claim("evt-1") is False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while not await second.claim("evt-1"):
            assert loop.time() < deadline, "claim did not expire"
            await asyncio.sleep(0.02)


async def test_memory_expired_claim_can_be_reclaimed(fake_clock: FakeClock) -> None:
    """In memory a claim expires exactly after claim_ttl_s of the store's clock."""
    async with MemoryDedupeStore(claim_ttl_s=10, clock=fake_clock) as store:
        assert await store.claim("evt-1")
        fake_clock.advance(9.9)
        assert await store.claim("evt-1") is False
        fake_clock.advance(0.2)
        assert await store.claim("evt-1") is True


async def test_stale_holder_cannot_release_a_newer_claim(redis_url: str, namespace: str) -> None:
    """A holder whose claim expired cannot delete the claim taken after it."""
    async with (
        RedisDedupeStore(redis_url, namespace=namespace, claim_ttl_s=0.1) as stale,
        RedisDedupeStore(redis_url, namespace=namespace) as fresh,
    ):
        assert await stale.claim("evt-1")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while not await fresh.claim("evt-1"):
            assert loop.time() < deadline, "claim did not expire"
            await asyncio.sleep(0.02)
        await stale.release("evt-1")
        assert await stale.claim("evt-1") is False


async def test_lost_claim_is_logged_and_first_publish_is_kept(
    redis_url: str, namespace: str
) -> None:
    """A second publisher's mark is logged as claim_lost and does not replace the first."""
    async with (
        RedisDedupeStore(redis_url, namespace=namespace, claim_ttl_s=0.1) as slow,
        RedisDedupeStore(redis_url, namespace=namespace) as fast,
    ):
        assert await slow.claim("evt-1")
        slow_token = slow.holder_token("evt-1")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while not await fast.claim("evt-1"):
            assert loop.time() < deadline, "claim did not expire"
            await asyncio.sleep(0.02)
        fast_token = fast.holder_token("evt-1")
        await fast.mark_published("evt-1")
        with capture_logs() as logs:
            await slow.mark_published("evt-1")
        assert [e["event"] for e in logs] == ["dedupe.claim_lost"]
        assert logs[0]["already_published"] is True
        assert await fast.published_token("evt-1") == fast_token != slow_token


async def test_published_record_expires_after_published_ttl(redis_url: str, namespace: str) -> None:
    """The published key carries published_ttl_s as its Redis expiry."""
    async with RedisDedupeStore(redis_url, namespace=namespace, published_ttl_s=3600) as store:
        assert await store.claim("evt-1")
        await store.mark_published("evt-1")
    client = aioredis.Redis.from_url(redis_url)
    try:
        ttl_ms = await client.pttl(f"{namespace}:dedupe:evt-1")
    finally:
        await client.aclose()
    assert 3_590_000 < ttl_ms <= 3_600_000


async def test_memory_store_evicts_least_recently_used(fake_clock: FakeClock) -> None:
    """A full memory store forgets the least recently used id first."""
    async with MemoryDedupeStore(max_entries=3, clock=fake_clock) as store:
        for event_id in ("a", "b", "c"):
            assert await store.claim(event_id)
            await store.mark_published(event_id)
        assert await store.is_published("a")  # touching "a" makes "b" the oldest
        assert await store.claim("d")
        assert len(store) == 3
        assert await store.is_published("b") is False
        assert await store.is_published("a") is True


async def test_memory_published_record_expires(fake_clock: FakeClock) -> None:
    """In memory a published record is forgotten after published_ttl_s."""
    async with MemoryDedupeStore(published_ttl_s=60, clock=fake_clock) as store:
        assert await store.claim("evt-1")
        await store.mark_published("evt-1")
        fake_clock.advance(60.1)
        assert await store.is_published("evt-1") is False
        assert await store.claim("evt-1") is True


async def test_open_falls_back_to_memory_when_redis_is_unreachable() -> None:
    """An unreachable Redis yields a started memory store and a warning."""
    with capture_logs() as logs:
        store = await open_dedupe_store("redis://127.0.0.1:1/0", namespace="unused")
    try:
        assert isinstance(store, MemoryDedupeStore)
        assert await store.claim("evt-1") is True
    finally:
        await store.stop()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["dedupe.redis_unavailable_using_memory"]


async def test_open_without_url_uses_memory_and_warns() -> None:
    """No configured URL yields a memory store and says deduplication is per process."""
    with capture_logs() as logs:
        store = await open_dedupe_store(None, namespace="unused", fallback_max_entries=5)
    await store.stop()
    assert isinstance(store, MemoryDedupeStore)
    assert [e["event"] for e in logs] == ["dedupe.no_redis_configured_using_memory"]


async def test_open_uses_redis_when_reachable(redis_url: str, namespace: str) -> None:
    """A reachable Redis yields a started Redis store."""
    store = await open_dedupe_store(redis_url, namespace=namespace)
    try:
        assert isinstance(store, RedisDedupeStore)
        assert await store.claim("evt-1") is True
    finally:
        await store.stop()


async def test_use_before_start_is_an_error(redis_url: str) -> None:
    """Calling a store outside its lifecycle raises DedupeStoreNotStarted."""
    with pytest.raises(DedupeStoreNotStarted):
        await RedisDedupeStore(redis_url).claim("evt-1")
    with pytest.raises(DedupeStoreNotStarted):
        await MemoryDedupeStore().claim("evt-1")


@pytest.mark.parametrize(
    ("upstream", "expected", "retriable"),
    [
        (redis_errors.ConnectionError("refused"), DedupeStoreUnavailable, True),
        (redis_errors.TimeoutError("slow"), DedupeStoreUnavailable, True),
        (redis_errors.BusyLoadingError("loading"), DedupeStoreUnavailable, True),
        (redis_errors.ResponseError("WRONGTYPE"), DedupeStoreBackendError, False),
        (redis_errors.RedisError("other"), DedupeStoreBackendError, False),
    ],
)
def test_every_redis_error_maps_to_a_store_error(
    upstream: Exception, expected: type[Exception], retriable: bool
) -> None:
    """Redis client errors surface only as this package's errors, with retriable set."""
    with pytest.raises(expected) as caught, _translate():
        raise upstream
    assert caught.value.retriable is retriable
    assert caught.value.__cause__ is upstream
