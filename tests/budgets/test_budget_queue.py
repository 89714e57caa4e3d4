"""Specification of the budget queue: callers over budget wait in a fair order (priorities,
users taking turns, first in first out per user) and are told at once when they cannot be
served before their deadline or the queue is full."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from budgets import BudgetExhausted, Budgets, Limit, MemoryStore, Priority, RedisStore


async def _budgets(*limits: Limit, capacity: int = 100) -> Budgets:
    budgets = Budgets(limits, MemoryStore(), queue_capacity=capacity, poll_s=0.02)
    await budgets.start()
    return budgets


@pytest.fixture
async def paced() -> AsyncIterator[Budgets]:
    """Budgets where provider `p` starts 20 calls a second, one at a time."""
    budgets = await _budgets(Limit(provider="p", rpm=1200, burst=1))
    yield budgets
    await budgets.stop()


def _deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def _served(
    budgets: Budgets, order: list[str], name: str, user: str, priority: Priority = "normal"
) -> None:
    grant = await budgets.acquire(
        "p", "m", "t", user=user, priority=priority, deadline=_deadline(20)
    )
    order.append(name)
    await budgets.release(grant)


async def _enqueue(budgets: Budgets, *callers: tuple[str, str, Priority]) -> list[str]:
    """Spend the budget, queue `callers` (name, user, priority) in this order, serve them all."""
    await budgets.acquire("p", "m", "t", user="first", deadline=_deadline(1))
    order: list[str] = []
    tasks = []
    for name, user, priority in callers:
        tasks.append(asyncio.create_task(_served(budgets, order, name, user, priority)))
        await asyncio.sleep(0)  # each reaches the queue before the next is created
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 20)
    return order


async def test_no_limit_means_no_grant_and_no_wait() -> None:
    """A provider without a configured limit is not budgeted at all."""
    budgets = await _budgets(Limit(provider="other", rpm=1))
    try:
        assert await budgets.acquire("p", "m", "t", user="u", deadline=_deadline(1)) is None
    finally:
        await budgets.stop()


async def test_a_caller_over_budget_waits_and_is_served(paced: Budgets) -> None:
    """The second call of a one-at-a-time budget waits for the refill, then gets its grant."""
    first = await paced.acquire("p", "m", "t", user="u", deadline=_deadline(5))
    second = await paced.acquire("p", "m", "t", user="u", deadline=_deadline(5))
    assert first is not None and first.waited_s == 0.0
    assert second is not None and second.waited_s > 0.0


async def test_one_users_calls_are_served_first_in_first_out(paced: Budgets) -> None:
    """Calls of one user leave the queue in the order they joined it."""
    order = await _enqueue(paced, *((f"c{i}", "u", "normal") for i in range(5)))
    assert order == ["c0", "c1", "c2", "c3", "c4"]


async def test_users_take_turns(paced: Budgets) -> None:
    """A user queueing after another's four calls waits for one of them, not all four."""
    order = await _enqueue(
        paced, *((f"a{i}", "a", "normal") for i in range(4)), ("b0", "b", "normal")
    )
    assert order.index("b0") <= 1
    assert [name for name in order if name.startswith("a")] == ["a0", "a1", "a2", "a3"]


async def test_high_priority_overtakes_normal_and_low(paced: Budgets) -> None:
    """A high-priority call queued last is served before the normal and low ones waiting."""
    order = await _enqueue(
        paced, ("low", "u1", "low"), ("normal", "u2", "normal"), ("high", "u3", "high")
    )
    assert order == ["high", "normal", "low"]


async def test_a_wait_past_the_deadline_is_refused_at_once() -> None:
    """Against a budget of one call per 10 s, a caller with 1 s left is refused without
    waiting, and the error carries the expected wait."""
    budgets = await _budgets(Limit(provider="p", rpm=6, burst=1))
    try:
        await budgets.acquire("p", "m", "t", user="u", deadline=_deadline(1))
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(BudgetExhausted) as caught:
            await budgets.acquire("p", "m", "t", user="u", deadline=_deadline(1))
        assert loop.time() - started < 0.5
    finally:
        await budgets.stop()
    assert 8 < caught.value.expected_wait_s <= 10
    assert not caught.value.queue_full and caught.value.retriable


async def test_a_full_queue_refuses_the_next_caller() -> None:
    """With one caller already waiting and room for one, the next is refused as queue full."""
    budgets = await _budgets(Limit(provider="p", rpm=60, burst=1), capacity=1)
    try:
        await budgets.acquire("p", "m", "t", user="u", deadline=_deadline(5))
        waiting = asyncio.create_task(
            budgets.acquire("p", "m", "t", user="u", deadline=_deadline(5))
        )
        await asyncio.sleep(0.05)
        with pytest.raises(BudgetExhausted) as caught:
            await budgets.acquire("p", "m", "t", user="v", deadline=_deadline(5))
        assert caught.value.queue_full
        assert budgets.queued("p", "m", "t") == 1
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert budgets.queued("p", "m", "t") == 0
    finally:
        await budgets.stop()


async def test_a_released_lease_wakes_the_next_caller() -> None:
    """Under a concurrency limit of one, a queued caller is served once the call ahead ends."""
    budgets = await _budgets(Limit(provider="p", concurrency=1))
    try:
        held = await budgets.acquire("p", "m", "t", user="u", deadline=_deadline(5))
        waiting = asyncio.create_task(
            budgets.acquire("p", "m", "t", user="v", deadline=_deadline(5))
        )
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await budgets.release(held)
        grant = await asyncio.wait_for(waiting, 5)
    finally:
        await budgets.stop()
    assert grant is not None and grant.waited_s > 0


async def test_a_caller_whose_deadline_passes_leaves_the_queue() -> None:
    """A queued caller still waiting at its deadline gets BudgetExhausted and is dequeued."""
    budgets = await _budgets(Limit(provider="p", concurrency=1))
    try:
        await budgets.acquire("p", "m", "t", user="u", deadline=_deadline(5))
        with pytest.raises(BudgetExhausted):
            await budgets.acquire("p", "m", "t", user="v", deadline=_deadline(0.2))
        assert budgets.queued("p", "m", "t") == 0
    finally:
        await budgets.stop()


async def test_tpm_usage_settles_the_estimate() -> None:
    """A call estimated at 900 tokens that used 100 gives 800 back: the next 900 fit at once."""
    budgets = await _budgets(Limit(provider="p", tpm=1000))
    try:
        first = await budgets.acquire("p", "m", "t", user="u", tokens=900, deadline=_deadline(1))
        await budgets.release(first, tokens_used=100)
        second = await budgets.acquire("p", "m", "t", user="u", tokens=900, deadline=_deadline(1))
    finally:
        await budgets.stop()
    assert second is not None and second.waited_s == 0.0


async def test_penalize_slows_the_shared_rate(redis_url: str, namespace: str) -> None:
    """An upstream 429 reported through one process's budgets cuts the rate another sees."""
    limit = Limit(provider="p", rpm=600, burst=1)
    one, two = (Budgets([limit], RedisStore(redis_url, namespace=namespace)) for _ in range(2))
    await one.start()
    await two.start()
    try:
        await one.penalize("p", "m", "t", retry_after_s=None)
        seen = await two.current_rate("p", "m", "t")
    finally:
        await one.stop()
        await two.stop()
    assert seen is not None and seen < 10
