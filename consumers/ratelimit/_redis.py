"""Rate limiter shared by every consumer process through Redis.

Why a Lua script: refill, take and penalize must read and write the bucket atomically while
many processes race on it, and they must use ONE clock. The script reads Redis server TIME;
client clocks of different processes (and hosts) disagree, so they are never used. Each
key's state is one hash (``<namespace>:ratelimit:<key>``) that expires once an idle bucket
would have refilled and recovered anyway, so expiry never changes behaviour. Needs Redis 5 or
newer (scripts replicated by effects, so a script may write after reading TIME).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from consumers.ratelimit._limit import RateLimit, wait_for_token
from consumers.ratelimit.errors import (
    RateLimiterBackendError,
    RateLimiterNotStarted,
    RateLimiterUnavailable,
)
from consumers.redis_client import open_redis, redis_errors_as

__all__ = ["RedisRateLimiter"]

# ARGV: mode ('take' | 'penalize' | 'peek'), rate, burst, floor, recovery,
#       retry_after_s, backoff_factor, penalty_cooldown_s.
# Returns a decimal string: 'take' -> seconds to wait ('0' = token taken);
# 'penalize' and 'peek' -> the effective rate. Numbers are stored with '%.6f' because Lua's
# default number-to-string conversion keeps only 14 digits, too few for epoch microseconds.
_BUCKET = """
local mode = ARGV[1]
local nominal = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local floor = tonumber(ARGV[4])
local recovery = tonumber(ARGV[5])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'rate', 'blocked', 'hold')
local tokens = tonumber(s[1]) or burst
local ts = tonumber(s[2]) or now
local rate = tonumber(s[3]) or nominal
local blocked = tonumber(s[4]) or 0
local hold = tonumber(s[5]) or 0
if rate > nominal then rate = nominal end
if rate < floor then rate = floor end
if tokens > burst then tokens = burst end
local from = math.max(ts, blocked)
if now > from then
  local elapsed = now - from
  tokens = math.min(burst, tokens + elapsed * rate)
  rate = math.min(nominal, rate + elapsed * recovery)
  ts = now
end
if mode == 'peek' then
  return string.format('%.6f', rate)
end
local result
if mode == 'take' then
  if now < blocked then
    result = string.format('%.6f', (blocked - now) + (1 - tokens) / rate)
  elseif tokens >= 1 then
    tokens = tokens - 1
    result = '0'
  else
    result = string.format('%.6f', (1 - tokens) / rate)
  end
else
  local retry_after = tonumber(ARGV[6])
  if now >= hold then
    rate = math.max(floor, rate * tonumber(ARGV[7]))
    hold = now + math.max(retry_after, tonumber(ARGV[8]))
  end
  tokens = 0
  if now + retry_after > blocked then blocked = now + retry_after end
  result = string.format('%.6f', rate)
end
redis.call('HSET', KEYS[1],
  'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', ts),
  'rate', string.format('%.6f', rate), 'blocked', string.format('%.6f', blocked),
  'hold', string.format('%.6f', hold))
local idle = math.max(0, math.max(blocked, hold) - now)
  + (nominal - floor) / recovery + burst / floor + 1
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(idle * 1000)))
return result
"""


# The one place where Redis client errors become this package's errors.
_translate = redis_errors_as(RateLimiterUnavailable, RateLimiterBackendError)


@dataclass(frozen=True)
class _Connection:
    client: aioredis.Redis
    bucket: AsyncScript


class RedisRateLimiter:
    """``RateLimiter`` whose buckets are shared by every process using the same namespace."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "gateway",
        connect_timeout_s: float = 1.0,
        op_timeout_s: float = 2.0,
        max_connections: int = 32,
    ) -> None:
        self._url = url
        self._prefix = f"{namespace}:ratelimit:"
        self._connect_timeout_s = connect_timeout_s
        self._op_timeout_s = op_timeout_s
        self._max_connections = max_connections
        self._conn: _Connection | None = None

    async def __aenter__(self) -> RedisRateLimiter:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect and load the script (EVALSHA from then on); idempotent."""
        if self._conn is not None:
            return
        client = await open_redis(
            self._url,
            connect_timeout_s=self._connect_timeout_s,
            op_timeout_s=self._op_timeout_s,
            max_connections=self._max_connections,
            probe=lambda c: c.script_load(_BUCKET),
            translate=_translate,
        )
        # AsyncScript reloads the script by itself if Redis restarted and lost it.
        self._conn = _Connection(client=client, bucket=client.register_script(_BUCKET))

    async def stop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.client.aclose()

    async def _run(
        self, mode: str, key: str, limit: RateLimit, retry_after_s: float = 0.0
    ) -> float:
        if self._conn is None:
            raise RateLimiterNotStarted("RedisRateLimiter used before start() or after stop()")
        args = (
            mode,
            repr(limit.rate_per_s),
            str(limit.burst),
            repr(limit.min_rate_per_s),
            repr(limit.recovery_per_s),
            repr(retry_after_s),
            repr(limit.backoff_factor),
            repr(limit.penalty_cooldown_s),
        )
        with _translate():
            reply = await self._conn.bucket(keys=[self._prefix + key], args=args)
        return float(reply)

    async def acquire(self, key: str, limit: RateLimit, *, timeout_s: float | None = None) -> float:
        async def take() -> float:
            return await self._run("take", key, limit)

        return await wait_for_token(take, key, timeout_s)

    async def penalize(self, key: str, limit: RateLimit, *, retry_after_s: float | None) -> None:
        await self._run("penalize", key, limit, max(0.0, retry_after_s or 0.0))

    async def current_rate(self, key: str, limit: RateLimit) -> float:
        return await self._run("peek", key, limit)
