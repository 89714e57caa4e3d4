"""Budgets of the upstream providers, shared by every process: rate, tokens, concurrency.

Why a package of its own: the proxy enforces them for every caller (HTTP and Kafka alike), and
one implementation serves all: the limits (`Limit`, per provider and optionally per model or
task: requests and tokens per minute, concurrent calls, a burst), their state in Redis (one
Lua script; concurrency as leases that expire if a process dies) or in this process when Redis
is absent, the adaptive rate (an upstream 429 cuts it, it recovers gradually: AIMD), and a
bounded, fair queue per budget (priorities, users taking turns) that tells a caller at once
when it cannot be served before its deadline. It imports neither the proxy nor the consumers.
"""

from budgets._budgets import Budgets, open_budgets
from budgets._limits import PRIORITIES, BucketParams, Limit, Priority, estimate_tokens
from budgets._memory import MemoryStore
from budgets._queue import Grant
from budgets._redis import RedisStore
from budgets._store import WAIT_FOR_RELEASE, BudgetStore, StoreKind
from budgets.errors import (
    BudgetError,
    BudgetExhausted,
    BudgetNotStarted,
    BudgetStoreError,
    BudgetStoreUnavailable,
)

__all__ = [
    "PRIORITIES",
    "WAIT_FOR_RELEASE",
    "BucketParams",
    "BudgetError",
    "BudgetExhausted",
    "BudgetNotStarted",
    "BudgetStore",
    "BudgetStoreError",
    "BudgetStoreUnavailable",
    "Budgets",
    "Grant",
    "Limit",
    "MemoryStore",
    "Priority",
    "RedisStore",
    "StoreKind",
    "estimate_tokens",
    "open_budgets",
]
