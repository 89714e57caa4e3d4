"""`n` choices from a provider that answers one: n calls at once, merged into one answer.

Why it exists: LiteLLM drops `n` for providers without it (Anthropic) and answers one choice,
which is not what was asked. The n calls run concurrently inside ONE attempt of the retry
policy: when any fails the others are cancelled and the attempt fails as a whole, so a retry
or a fallback serves all n choices from one provider, never a mix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import litellm

__all__ = ["fan_out"]


async def fan_out(n: int, one: Callable[[], Awaitable[Any]]) -> Any:
    """`n` concurrent `one()` answers (LiteLLM ModelResponses) as one: choices indexed
    0..n-1 in call order, usage (and LiteLLM's response cost) summed, the first call's id."""
    calls = [asyncio.ensure_future(one()) for _ in range(n)]
    try:
        answers = await asyncio.gather(*calls)
    except BaseException:
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        raise
    merged = answers[0]
    choices = [choice for answer in answers for choice in answer.choices]
    for index, choice in enumerate(choices):
        choice.index = index
    merged.choices = choices
    usages: list[Any] = [u for a in answers if (u := getattr(a, "usage", None)) is not None]
    if len(usages) == n:
        prompt = sum(int(u.prompt_tokens or 0) for u in usages)
        completion = sum(int(u.completion_tokens or 0) for u in usages)
        merged.usage = litellm.Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
    costs: list[float] = [
        c
        for a in answers
        if isinstance(
            c := (getattr(a, "_hidden_params", None) or {}).get("response_cost"), int | float
        )
    ]
    if len(costs) == n:
        # LiteLLM keeps a response's cost there; the sum is what the n calls cost.
        merged._hidden_params["response_cost"] = sum(costs)
    return merged
