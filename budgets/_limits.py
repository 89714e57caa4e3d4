"""What a budget is: one configured limit, the bucket numbers derived from it, and which limit
applies to a call.

A limit names an upstream provider and optionally a model and a task; the most specific limit
matching a call applies (model and task > model > task > provider), and every call it matches
shares its one budget. Its numbers:
- `rpm` requests per minute, refilled continuously up to `burst` (default: one second's worth);
  this is the rate the AIMD adaptation moves (see `_store`);
- `tpm` tokens per minute (prompt + completion), up to a minute's worth at once; a call takes
  its estimate before it starts and the difference to its usage is settled afterwards;
- `concurrency` calls in flight at once, held as leases that expire after `lease_ttl_s` if the
  process holding them dies.
Any of them may be left out (no limit of that kind).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "PRIORITIES",
    "BucketParams",
    "Limit",
    "Priority",
    "estimate_tokens",
    "match_limit",
]

Priority = Literal["high", "normal", "low"]
# Served in this order; within one priority, users take turns.
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "low")

# Stands for "no limit of this kind" in the bucket arithmetic (the Lua script has no None).
_UNLIMITED = 1e9
_Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]


class Limit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`gateway_settings.budgets.limits[]`: one provider's (model's, task's) budget."""

    provider: Annotated[str, msgspec.Meta(min_length=1)]
    # "*": every model / task of the provider. A model may be named with or without its
    # provider prefix (`anthropic/claude-sonnet-4-5` or `claude-sonnet-4-5`).
    model: str = "*"
    task: str = "*"
    rpm: Annotated[float, msgspec.Meta(gt=0)] | None = None
    tpm: Annotated[int, msgspec.Meta(gt=0)] | None = None
    concurrency: Annotated[int, msgspec.Meta(gt=0)] | None = None
    # Requests that may start at once after an idle spell; default one second's worth of rpm.
    burst: Annotated[int, msgspec.Meta(gt=0)] | None = None
    # AIMD: a 429 multiplies the request rate by backoff_factor, not below min_fraction of
    # rpm; it climbs back by recovery_fraction_per_s of rpm each second. 429s within
    # penalty_cooldown_s of a cut (or its Retry-After, if longer) do not cut again: one
    # overload burst answers many calls in flight at once.
    backoff_factor: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5
    min_fraction: _Fraction = 0.1
    recovery_fraction_per_s: _Fraction = 0.05
    penalty_cooldown_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0

    def __post_init__(self) -> None:
        if self.rpm is None and self.tpm is None and self.concurrency is None:
            raise ValueError(f"budget for '{self.name}' sets none of rpm, tpm, concurrency")

    def share(self, processes: int) -> Limit:
        """This limit split evenly over `processes` processes that cannot share a store: each
        admits its part, so together they never admit more than the whole."""
        if processes <= 1:
            return self

        def part(value: float | None) -> float | None:
            return None if value is None else value / processes

        def whole_part(value: int | None) -> int | None:
            # At least one each: a process that could never call would hang its callers.
            return None if value is None else max(1, value // processes)

        return msgspec.structs.replace(
            self,
            rpm=part(self.rpm),
            tpm=whole_part(self.tpm),
            concurrency=whole_part(self.concurrency),
            burst=whole_part(self.burst),
        )

    @property
    def name(self) -> str:
        """`provider:model:task`, the budget's key (and how logs and errors name it)."""
        return f"{self.provider}:{self.model}:{self.task}"

    def params(self, lease_ttl_s: float) -> BucketParams:
        rate = self.rpm / 60 if self.rpm is not None else _UNLIMITED
        burst = self.burst or (max(1, math.ceil(rate)) if self.rpm is not None else _UNLIMITED)
        return BucketParams(
            rate_per_s=rate,
            burst=float(burst),
            min_rate_per_s=rate * self.min_fraction,
            recovery_per_s=rate * self.recovery_fraction_per_s,
            backoff_factor=self.backoff_factor,
            penalty_cooldown_s=self.penalty_cooldown_s,
            tokens_per_s=self.tpm / 60 if self.tpm is not None else 0.0,
            token_capacity=float(self.tpm or 0),
            concurrency=self.concurrency or 0,
            lease_ttl_s=lease_ttl_s,
        )


@dataclass(frozen=True, slots=True)
class BucketParams:
    """A limit as the stores compute with it: per second; 0 tokens_per_s / concurrency means
    no limit of that kind."""

    rate_per_s: float
    burst: float
    min_rate_per_s: float
    recovery_per_s: float
    backoff_factor: float
    penalty_cooldown_s: float
    tokens_per_s: float
    token_capacity: float
    concurrency: int
    lease_ttl_s: float

    def clamp_tokens(self, tokens: int) -> float:
        """A call's token demand, at most what the bucket holds (else it could never start)."""
        if self.tokens_per_s <= 0:
            return 0.0
        return float(min(max(0, tokens), self.token_capacity))


def _model_matches(pattern: str, model: str) -> bool:
    return pattern in ("*", model) or pattern == model.split("/", 1)[-1]


def match_limit(limits: Sequence[Limit], provider: str, model: str, task: str) -> Limit | None:
    """The most specific limit for a call, or None when no limit names its provider."""
    best: Limit | None = None
    best_rank = -1
    for limit in limits:
        if limit.provider != provider or not _model_matches(limit.model, model):
            continue
        if limit.task not in ("*", task):
            continue
        rank = (2 if limit.model != "*" else 0) + (1 if limit.task != "*" else 0)
        if rank > best_rank:
            best, best_rank = limit, rank
    return best


def _chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        # Multimodal parts: text counts by its length; an image is billed as tokens too, but
        # its size in base64 says little about them, so it counts as a flat 1000 characters.
        total = 0
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                total += len(text) if isinstance(text, str) else 1000
        return total
    return 0


def estimate_tokens(messages: Iterable[Any], max_tokens: int | None) -> int:
    """A call's tokens before it is made: prompt characters / 4 plus the completion allowed
    (`max_tokens`, else 256); reconciled with the answer's usage afterwards."""
    chars = sum(_chars(m.get("content")) for m in messages if isinstance(m, dict))
    return chars // 4 + (max_tokens if max_tokens is not None and max_tokens > 0 else 256)
