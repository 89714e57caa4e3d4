"""Specification of the budget stores (Redis and in-process): request buckets, TPM tokens,
concurrency leases and the AIMD adaptation, identical on both."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from budget_support import FakeClock, params

from budgets import (
    WAIT_FOR_RELEASE,
    BudgetNotStarted,
    BudgetStore,
    BudgetStoreError,
    BudgetStoreUnavailable,
    MemoryStore,
    RedisStore,
)
from budgets._redis import _translate

StoreFactory = Callable[[], Awaitable[BudgetStore]]


@pytest.fixture(params=["redis", "memory"])
async def make_store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[StoreFactory]:
    """Builds started stores of one backend, all sharing the test's budgets."""
    stores: list[BudgetStore] = []

    async def make() -> BudgetStore:
        if request.param == "memory" and stores:
            return stores[0]  # in-process state is shared only within one store
        store: BudgetStore = (
            RedisStore(redis_url, namespace=namespace)
            if request.param == "redis"
            else MemoryStore()
        )
        await store.start()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.stop()


def _lease() -> str:
    return uuid.uuid4().hex


async def test_burst_is_served_then_the_next_call_waits(make_store: StoreFactory) -> None:
    """A fresh budget grants `burst` calls at once, then names the wait for the next one."""
    store, p = await make_store(), params(rpm=60, burst=3)
    taken = [await store.take("k", p, 0, _lease()) for _ in range(3)]
    wait = await store.take("k", p, 0, _lease())
    assert taken == [0.0, 0.0, 0.0]
    assert 0.5 < wait <= 1.0


async def test_two_stores_share_one_budget(make_store: StoreFactory) -> None:
    """Calls taken through one store are missing from the other's budget."""
    first, second, p = await make_store(), await make_store(), params(rpm=60, burst=2)
    assert await first.take("k", p, 0, _lease()) == 0.0
    assert await second.take("k", p, 0, _lease()) == 0.0
    assert await second.take("k", p, 0, _lease()) > 0


async def test_keys_have_independent_budgets(make_store: StoreFactory) -> None:
    """Spending one budget leaves another one full."""
    store, p = await make_store(), params(rpm=60, burst=1)
    await store.take("a", p, 0, _lease())
    assert await store.take("a", p, 0, _lease()) > 0
    assert await store.take("b", p, 0, _lease()) == 0.0


async def test_tpm_tokens_are_taken_and_refunded(make_store: StoreFactory) -> None:
    """A call takes its token estimate; a refund on release makes room for the next call."""
    store, p = await make_store(), params(tpm=1000)
    first = _lease()
    assert await store.take("k", p, 800, first) == 0.0
    assert await store.take("k", p, 800, _lease()) > 1.0
    await store.release("k", p, first, 700)  # it used 100 of its 800
    assert await store.take("k", p, 800, _lease()) == 0.0


async def test_concurrency_is_held_as_leases(make_store: StoreFactory) -> None:
    """With two leases out a third call waits for a release, and gets one after it."""
    store, p = await make_store(), params(concurrency=2)
    leases = [_lease(), _lease()]
    for lease in leases:
        assert await store.take("k", p, 0, lease) == 0.0
    assert await store.take("k", p, 0, _lease()) == WAIT_FOR_RELEASE
    await store.release("k", p, leases[0], 0)
    assert await store.take("k", p, 0, _lease()) == 0.0


async def test_a_dead_processes_lease_expires(make_store: StoreFactory) -> None:
    """A lease never released (its process died) stops counting after its time to live."""
    store, p = await make_store(), params(lease_ttl_s=0.3, concurrency=1)
    assert await store.take("k", p, 0, _lease()) == 0.0
    assert await store.take("k", p, 0, _lease()) == WAIT_FOR_RELEASE
    await asyncio.sleep(0.5)
    assert await store.take("k", p, 0, _lease()) == 0.0


async def test_penalize_halves_the_effective_rate(make_store: StoreFactory) -> None:
    """An upstream 429 cuts the effective rate to half of what it was."""
    store, p = await make_store(), params(rpm=600, burst=1)
    rate = await store.penalize("k", p, 0)
    assert rate == pytest.approx(5.0, rel=0.02)
    assert await store.current_rate("k", p) == pytest.approx(5.0, rel=0.05)


async def test_penalize_blocks_takes_for_retry_after(make_store: StoreFactory) -> None:
    """After a 429 with Retry-After 2 s no call is granted and the wait says so."""
    store, p = await make_store(), params(rpm=6000, burst=5)
    await store.penalize("k", p, 2.0)
    assert await store.take("k", p, 0, _lease()) >= 1.9


async def test_many_429s_at_once_cut_the_rate_once(make_store: StoreFactory) -> None:
    """429s arriving within the penalty cooldown of a cut do not cut again."""
    store, p = await make_store(), params(rpm=600, burst=1, penalty_cooldown_s=5)
    rates = [await store.penalize("k", p, 0) for _ in range(5)]
    assert rates[-1] == pytest.approx(5.0, rel=0.05)


async def test_rate_never_drops_below_the_floor(make_store: StoreFactory) -> None:
    """Repeated cuts stop at min_fraction of the nominal rate."""
    store, p = await make_store(), params(rpm=600, burst=1, penalty_cooldown_s=0)
    for _ in range(10):
        rate = await store.penalize("k", p, 0)
    assert rate == pytest.approx(1.0, rel=0.05)


async def test_memory_rate_recovers_additively(fake_clock: FakeClock) -> None:
    """In process the rate climbs by recovery_fraction_per_s of nominal each second, capped."""
    store, p = MemoryStore(clock=fake_clock), params(rpm=600, burst=1)
    await store.start()
    await store.penalize("k", p, 0)
    fake_clock.advance(2)
    assert await store.current_rate("k", p) == pytest.approx(5.0 + 2 * 0.5)
    fake_clock.advance(100)
    assert await store.current_rate("k", p) == pytest.approx(10.0)


async def test_redis_rate_recovers_over_time(redis_url: str, namespace: str) -> None:
    """After a cut the shared rate climbs back, never above nominal."""
    p = params(rpm=600, burst=1, recovery_fraction_per_s=1.0)
    async with asyncio.timeout(10):
        store = RedisStore(redis_url, namespace=namespace)
        await store.start()
        try:
            cut = await store.penalize("k", p, 0)
            await asyncio.sleep(0.3)
            later = await store.current_rate("k", p)
            await asyncio.sleep(0.6)
            full = await store.current_rate("k", p)
        finally:
            await store.stop()
    assert cut < later <= 10.0
    assert full == pytest.approx(10.0)


async def test_redis_budget_expires_when_idle(redis_url: str, namespace: str) -> None:
    """A budget's hash has a time to live: idle budgets leave nothing behind in Redis."""
    store, p = RedisStore(redis_url, namespace=namespace), params(rpm=600, burst=1)
    await store.start()
    client = aioredis.Redis.from_url(redis_url)
    try:
        await store.take("k", p, 0, _lease())
        ttl = await client.pttl(f"{namespace}:budget:{{k}}")
    finally:
        await client.aclose()
        await store.stop()
    assert 0 < ttl < 60_000


async def test_use_before_start_is_an_error(redis_url: str) -> None:
    """Calling a store outside its lifecycle raises BudgetNotStarted."""
    for store in (RedisStore(redis_url), MemoryStore()):
        with pytest.raises(BudgetNotStarted):
            await store.take("k", params(rpm=60), 0, _lease())


async def test_unreachable_redis_is_a_retriable_error() -> None:
    """Starting against a port nobody listens on raises BudgetStoreUnavailable."""
    store = RedisStore("redis://127.0.0.1:1/0", connect_timeout_s=0.5)
    with pytest.raises(BudgetStoreUnavailable) as caught:
        await store.start()
    assert caught.value.retriable


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (redis_errors.ConnectionError("down"), BudgetStoreUnavailable),
        (redis_errors.TimeoutError("slow"), BudgetStoreUnavailable),
        (redis_errors.ResponseError("WRONGTYPE"), BudgetStoreError),
        (redis_errors.AuthenticationError("no"), BudgetStoreUnavailable),
    ],
)
def test_every_redis_error_maps_to_a_budget_error(
    raised: Exception, expected: type[Exception]
) -> None:
    """Redis client errors surface only as this package's errors."""
    with pytest.raises(expected), _translate():
        raise raised
