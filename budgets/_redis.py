"""Budget store shared by every process and replica through Redis.

Why a Lua script: refill, take (request, TPM tokens and a lease, all or nothing), release and
penalize must read and write a budget atomically while many processes race on it, and they
must use ONE clock: the script reads Redis server TIME, never a client's. Each budget is one
hash (`<namespace>:budget:{<key>}`) plus a sorted set of leases scored by their expiry
(`...:leases`; the braces keep both in one cluster slot). Both expire once an idle budget
would have refilled and recovered anyway, so expiry never changes behaviour. Needs Redis 5 or
newer (scripts replicated by effects, so a script may write after reading TIME).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.commands.core import AsyncScript

from budgets._limits import BucketParams
from budgets._store import StoreKind
from budgets.errors import BudgetNotStarted, BudgetStoreError, BudgetStoreUnavailable

__all__ = ["RedisStore"]

# KEYS: the budget's hash, its leases. ARGV: mode ('take' | 'release' | 'penalize' | 'peek'),
# rate, burst, floor, recovery, backoff_factor, penalty_cooldown_s, tokens_per_s,
# token_capacity, concurrency, lease_ttl_s, then per mode: take -> tokens, lease;
# release -> refund, lease; penalize -> retry_after_s.
# Returns a decimal string: take -> '0' granted, seconds to wait, or '-1' (wait for a release);
# penalize and peek -> the effective rate. Numbers are stored with '%.6f' because Lua's default
# number-to-string conversion keeps only 14 digits, too few for epoch microseconds.
_BUDGET = """
local mode = ARGV[1]
local nominal = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local floor = tonumber(ARGV[4])
local recovery = tonumber(ARGV[5])
local trate = tonumber(ARGV[8])
local tcap = tonumber(ARGV[9])
local conc = tonumber(ARGV[10])
local ttl = tonumber(ARGV[11])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'rate', 'blocked', 'hold', 'ttok')
local tokens = tonumber(s[1]) or burst
local ts = tonumber(s[2]) or now
local rate = tonumber(s[3]) or nominal
local blocked = tonumber(s[4]) or 0
local hold = tonumber(s[5]) or 0
local ttok = tonumber(s[6]) or tcap
if rate > nominal then rate = nominal end
if rate < floor then rate = floor end
if tokens > burst then tokens = burst end
local from = math.max(ts, blocked)
if now > from then
  local elapsed = now - from
  tokens = math.min(burst, tokens + elapsed * rate)
  rate = math.min(nominal, rate + elapsed * recovery)
  ttok = math.min(tcap, ttok + (now - ts) * trate)
  ts = now
end
if mode == 'peek' then
  return string.format('%.6f', rate)
end
local result = '0'
if mode == 'take' then
  local need = tonumber(ARGV[12])
  local wait = 0
  if now < blocked then
    wait = (blocked - now) + math.max(0, 1 - tokens) / rate
  elseif tokens < 1 then
    wait = (1 - tokens) / rate
  end
  if trate > 0 and ttok < need then wait = math.max(wait, (need - ttok) / trate) end
  if wait > 0 then
    return string.format('%.6f', wait)
  end
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.6f', now))
    if redis.call('ZCARD', KEYS[2]) >= conc then
      return '-1'
    end
    redis.call('ZADD', KEYS[2], string.format('%.6f', now + ttl), ARGV[13])
    redis.call('PEXPIRE', KEYS[2], string.format('%d', math.ceil((ttl + 1) * 1000)))
  end
  tokens = tokens - 1
  if trate > 0 then ttok = ttok - need end
elseif mode == 'release' then
  redis.call('ZREM', KEYS[2], ARGV[13])
  if trate > 0 then ttok = math.max(-tcap, math.min(tcap, ttok + tonumber(ARGV[12]))) end
else
  local retry_after = tonumber(ARGV[12])
  if now >= hold then
    rate = math.max(floor, rate * tonumber(ARGV[6]))
    hold = now + math.max(retry_after, tonumber(ARGV[7]))
  end
  tokens = 0
  if now + retry_after > blocked then blocked = now + retry_after end
  result = string.format('%.6f', rate)
end
redis.call('HSET', KEYS[1],
  'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', ts),
  'rate', string.format('%.6f', rate), 'blocked', string.format('%.6f', blocked),
  'hold', string.format('%.6f', hold), 'ttok', string.format('%.6f', ttok))
local idle = math.max(0, math.max(blocked, hold) - now)
  + (nominal - floor) / recovery + burst / floor + 1
if trate > 0 then idle = idle + 2 * tcap / trate end
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(idle * 1000)))
return result
"""


@contextmanager
def _translate() -> Iterator[None]:
    """The one place where Redis client errors become this package's errors."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise BudgetStoreUnavailable(f"redis unreachable: {type(exc).__name__}") from exc
    except redis_errors.RedisError as exc:
        raise BudgetStoreError(f"redis error: {type(exc).__name__}: {exc}") from exc


def _number(value: float) -> str:
    return repr(float(value))


class RedisStore:
    """`BudgetStore` whose state is shared by every process using the same namespace."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "gateway",
        connect_timeout_s: float = 1.0,
        op_timeout_s: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        self._url = url
        self._prefix = f"{namespace}:budget:"
        self._connect_timeout_s = connect_timeout_s
        self._op_timeout_s = op_timeout_s
        self._max_connections = max_connections
        self._client: aioredis.Redis | None = None
        self._script: AsyncScript | None = None

    @property
    def kind(self) -> StoreKind:
        return "redis"

    async def start(self) -> None:
        """Connect and load the script (EVALSHA from then on); idempotent."""
        if self._client is not None:
            return
        # A blocking pool: a burst of calls beyond its size waits for a free connection
        # instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            decode_responses=True,
            socket_connect_timeout=self._connect_timeout_s,
            socket_timeout=self._op_timeout_s,
            max_connections=self._max_connections,
            timeout=self._op_timeout_s,
        )
        client = aioredis.Redis.from_pool(pool)
        try:
            with _translate():
                await client.script_load(_BUDGET)
        except BaseException:
            await client.aclose()
            raise
        # AsyncScript reloads the script by itself if Redis restarted and lost it.
        self._client, self._script = client, client.register_script(_BUDGET)

    async def stop(self) -> None:
        client, self._client, self._script = self._client, None, None
        if client is not None:
            await client.aclose()

    async def _run(self, mode: str, key: str, p: BucketParams, *extra: str) -> float:
        if self._script is None:
            raise BudgetNotStarted("RedisStore used before start() or after stop()")
        hash_key = f"{self._prefix}{{{key}}}"
        args = (
            mode,
            _number(p.rate_per_s),
            _number(p.burst),
            _number(p.min_rate_per_s),
            _number(p.recovery_per_s),
            _number(p.backoff_factor),
            _number(p.penalty_cooldown_s),
            _number(p.tokens_per_s),
            _number(p.token_capacity),
            str(p.concurrency),
            _number(p.lease_ttl_s),
            *extra,
        )
        with _translate():
            reply = await self._script(keys=[hash_key, f"{hash_key}:leases"], args=args)
        return float(reply)

    async def take(self, key: str, params: BucketParams, tokens: float, lease: str) -> float:
        return await self._run("take", key, params, _number(tokens), lease)

    async def release(self, key: str, params: BucketParams, lease: str, refund: float) -> None:
        await self._run("release", key, params, _number(refund), lease)

    async def penalize(self, key: str, params: BucketParams, retry_after_s: float | None) -> float:
        return await self._run("penalize", key, params, _number(max(0.0, retry_after_s or 0.0)))

    async def current_rate(self, key: str, params: BucketParams) -> float:
        return await self._run("peek", key, params)
