"""Which limit applies to a call, what a limit may say, how a call's tokens are estimated, and
which store the budgets open."""

from __future__ import annotations

import msgspec
import pytest
from structlog.testing import capture_logs

from budgets import Limit, estimate_tokens, open_budgets
from budgets._limits import match_limit


def test_the_most_specific_limit_applies() -> None:
    """Model and task beat model, model beats task, task beats the provider-wide limit."""
    limits = [
        Limit(provider="a", rpm=1),
        Limit(provider="a", task="captioning", rpm=2),
        Limit(provider="a", model="claude-x", rpm=3),
        Limit(provider="a", model="claude-x", task="captioning", rpm=4),
    ]

    def rpm(model: str, task: str) -> float | None:
        found = match_limit(limits, "a", model, task)
        return found.rpm if found else None

    assert rpm("a/claude-x", "captioning") == 4
    assert rpm("a/claude-x", "styling") == 3
    assert rpm("a/claude-y", "captioning") == 2
    assert rpm("a/claude-y", "styling") == 1
    assert match_limit(limits, "b", "b/m", "captioning") is None


def test_a_limit_must_limit_something() -> None:
    """A limit with none of rpm, tpm and concurrency is refused, naming its budget."""
    with pytest.raises(msgspec.ValidationError, match="anthropic"):
        msgspec.convert({"provider": "anthropic"}, Limit)


def test_unknown_fields_in_a_limit_are_refused() -> None:
    """A typo in a limit is an error naming the field, never a silently ignored setting."""
    with pytest.raises(msgspec.ValidationError, match="rmp"):
        msgspec.convert({"provider": "anthropic", "rmp": 5}, Limit)


def test_burst_defaults_to_one_seconds_worth() -> None:
    """Without a burst, 600 rpm may start 10 calls at once; 6 rpm one."""
    assert Limit(provider="a", rpm=600).params(60).burst == 10
    assert Limit(provider="a", rpm=6).params(60).burst == 1


def test_tokens_are_prompt_characters_over_four_plus_max_tokens() -> None:
    """400 characters of text with max_tokens 50 are estimated at 150 tokens."""
    messages = [
        {"role": "system", "content": "x" * 100},
        {"role": "user", "content": [{"type": "text", "text": "y" * 300}]},
    ]
    assert estimate_tokens(messages, 50) == 150


async def test_open_uses_redis_when_reachable(redis_url: str, namespace: str) -> None:
    """A reachable Redis holds the budgets."""
    budgets = await open_budgets(
        [Limit(provider="a", rpm=1)], redis_url=redis_url, namespace=namespace
    )
    try:
        assert budgets.store_kind == "redis"
    finally:
        await budgets.stop()


async def test_open_falls_back_to_memory_when_redis_is_unreachable() -> None:
    """An unreachable Redis yields in-process budgets and a warning that says so."""
    with capture_logs() as logs:
        budgets = await open_budgets(
            [Limit(provider="a", rpm=1)], redis_url="redis://127.0.0.1:1/0", connect_timeout_s=0.5
        )
    try:
        assert budgets.store_kind == "memory"
    finally:
        await budgets.stop()
    assert any(e["event"] == "budgets.redis_unavailable_using_memory" for e in logs)


async def test_processes_without_redis_split_each_limit() -> None:
    """Several processes holding budgets in memory each take an even part of every limit."""
    limit = Limit(provider="a", rpm=90, tpm=1000, concurrency=3, burst=5)
    budgets = await open_budgets([limit], redis_url=None, processes=2)
    try:
        (held,) = budgets.limits
        assert (held.rpm, held.tpm, held.concurrency, held.burst) == (45, 500, 1, 2)
    finally:
        await budgets.stop()


async def test_processes_sharing_redis_keep_the_whole_limit(redis_url: str, namespace: str) -> None:
    """Budgets in Redis are one shared budget, so no process's part is cut."""
    limit = Limit(provider="a", rpm=90, concurrency=3)
    budgets = await open_budgets([limit], redis_url=redis_url, namespace=namespace, processes=4)
    try:
        assert budgets.limits == (limit,)
    finally:
        await budgets.stop()
