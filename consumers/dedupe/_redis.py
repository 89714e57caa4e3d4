"""Dedupe store shared by every consumer process through Redis.

Why Redis: a redelivered event usually lands on a different consumer process after a
rebalance, so the claim and the published record must live outside the process. All state of
an event id is one string key (``<namespace>:dedupe:<event_id>``) holding ``c:<token>`` or
``p:<token>``; transitions are SET NX or small Lua scripts, so each one is atomic on the server.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import redis.asyncio as aioredis
import structlog
from redis.commands.core import AsyncScript

from consumers.dedupe._protocol import CLAIM_TTL_S, PUBLISHED_TTL_S
from consumers.dedupe.errors import (
    DedupeStoreBackendError,
    DedupeStoreNotStarted,
    DedupeStoreUnavailable,
)
from consumers.redis_client import open_redis, redis_errors_as

__all__ = ["RedisDedupeStore"]

_CLAIMED = "c:"
_PUBLISHED = "p:"

# Returns 1 when the caller still held its claim, 0 when the claim was lost (expired or taken
# over), 2 when another holder had already published; a first published record is kept.
_MARK_PUBLISHED = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 2) == 'p:' then
  return 2
end
redis.call('SET', KEYS[1], 'p:' .. ARGV[1], 'PX', ARGV[2])
if current == 'c:' .. ARGV[1] then
  return 1
end
return 0
"""

# The *_MANY scripts take a whole batch as a few arguments: ARGV[1] is the key prefix and
# ARGV[2] a JSON array of event ids, so the client encodes a handful of arguments per batch
# instead of one or two per event (which dominated the client's CPU), and each answers with
# one string of digits, one per id. They build key names themselves, which a single Redis
# server allows; a Redis Cluster would need the ids hash-tagged to one slot.

# _MARK_PUBLISHED per id: ARGV[3] = ttl ms, ARGV[4] = JSON array of each id's claim token.
_MARK_PUBLISHED_MANY = """
local ids, tokens = cjson.decode(ARGV[2]), cjson.decode(ARGV[4])
local outcomes = {}
for i, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local current = redis.call('GET', key)
  if current and string.sub(current, 1, 2) == 'p:' then
    outcomes[i] = '2'
  else
    redis.call('SET', key, 'p:' .. tokens[i], 'PX', ARGV[3])
    outcomes[i] = (current == 'c:' .. tokens[i]) and '1' or '0'
  end
end
return table.concat(outcomes)
"""

# SET NX per id with one claim token for the batch: ARGV[3] = ttl ms, ARGV[4] = token.
_CLAIM_MANY = """
local ids = cjson.decode(ARGV[2])
local value = 'c:' .. ARGV[4]
local won = {}
for i, id in ipairs(ids) do
  won[i] = redis.call('SET', ARGV[1] .. id, value, 'NX', 'PX', ARGV[3]) and '1' or '0'
end
return table.concat(won)
"""

# Published flags per id ('1' published, '0' not).
_PUBLISHED_MANY = """
local ids = cjson.decode(ARGV[2])
local flags = {}
for i, id in ipairs(ids) do
  local current = redis.call('GET', ARGV[1] .. id)
  flags[i] = (current and string.sub(current, 1, 2) == 'p:') and '1' or '0'
end
return table.concat(flags)
"""

# Compare-and-delete: a holder whose claim expired must not delete a newer holder's claim.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_OUTCOME_LOST = 0
_OUTCOME_ALREADY_PUBLISHED = 2


_json = msgspec.json.encode

# The one place where Redis client errors become this package's errors.
_translate = redis_errors_as(DedupeStoreUnavailable, DedupeStoreBackendError)


@dataclass(frozen=True)
class _Connection:
    client: aioredis.Redis
    mark_published: AsyncScript
    mark_published_many: AsyncScript
    claim_many: AsyncScript
    published_many: AsyncScript
    release: AsyncScript


class RedisDedupeStore:
    """``DedupeStore`` over one Redis database; safe to share across processes."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "gateway",
        claim_ttl_s: float = CLAIM_TTL_S,
        published_ttl_s: float = PUBLISHED_TTL_S,
        connect_timeout_s: float = 1.0,
        op_timeout_s: float = 2.0,
        max_connections: int = 32,
    ) -> None:
        self._url = url
        self._prefix = f"{namespace}:dedupe:"
        self._claim_ttl_s = claim_ttl_s
        self._claim_ttl_ms = max(1, round(claim_ttl_s * 1000))
        self._published_ttl_ms = max(1, round(published_ttl_s * 1000))
        self._connect_timeout_s = connect_timeout_s
        self._op_timeout_s = op_timeout_s
        self._max_connections = max_connections
        self._conn: _Connection | None = None
        # Token and local claim time of each claim this instance took and has not yet released
        # or marked published, oldest first. A claim older than claim_ttl_s has expired in
        # Redis, so its entry is dropped: this bounds the map even if a caller never settles.
        self._held: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def __aenter__(self) -> RedisDedupeStore:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._conn is not None:
            return
        client = await open_redis(
            self._url,
            connect_timeout_s=self._connect_timeout_s,
            op_timeout_s=self._op_timeout_s,
            max_connections=self._max_connections,
            probe=lambda c: c.ping(),
            translate=_translate,
        )
        self._conn = _Connection(
            client=client,
            mark_published=client.register_script(_MARK_PUBLISHED),
            mark_published_many=client.register_script(_MARK_PUBLISHED_MANY),
            claim_many=client.register_script(_CLAIM_MANY),
            published_many=client.register_script(_PUBLISHED_MANY),
            release=client.register_script(_RELEASE),
        )

    async def stop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.client.aclose()

    def _connection(self) -> _Connection:
        if self._conn is None:
            raise DedupeStoreNotStarted("RedisDedupeStore used before start() or after stop()")
        return self._conn

    async def claim(self, event_id: str) -> bool:
        conn = self._connection()
        token = secrets.token_hex(8)
        with _translate():
            won = await conn.client.set(
                self._prefix + event_id, _CLAIMED + token, nx=True, px=self._claim_ttl_ms
            )
        if won:
            self._remember(event_id, token, time.monotonic())
        return bool(won)

    def _remember(self, event_id: str, token: str, now: float) -> None:
        self._held[event_id] = (token, now)
        self._held.move_to_end(event_id)
        while self._held and now - next(iter(self._held.values()))[1] > self._claim_ttl_s:
            self._held.popitem(last=False)

    async def claim_many(self, event_ids: Sequence[str]) -> list[bool]:
        """`claim` for each id, in one round trip; the ids share one claim token."""
        if not event_ids:
            return []
        conn = self._connection()
        token = secrets.token_hex(8)
        with _translate():
            answer = await conn.claim_many(
                args=[self._prefix, _json(event_ids), self._claim_ttl_ms, token]
            )
        won = [flag == "1" for flag in answer]
        now = time.monotonic()
        for event_id, ok in zip(event_ids, won, strict=True):
            if ok:
                self._remember(event_id, token, now)
        return won

    async def mark_published_many(self, event_ids: Sequence[str]) -> None:
        """`mark_published` for each id, in one round trip."""
        if not event_ids:
            return
        conn = self._connection()
        tokens = [self.holder_token(event_id) or "unclaimed" for event_id in event_ids]
        with _translate():
            outcomes = await conn.mark_published_many(
                args=[self._prefix, _json(event_ids), self._published_ttl_ms, _json(tokens)]
            )
        for event_id, outcome in zip(event_ids, outcomes, strict=True):
            self._held.pop(event_id, None)
            if outcome != "1":
                structlog.get_logger(__name__).warning(
                    "dedupe.claim_lost", event_id=event_id, already_published=outcome == "2"
                )

    async def is_published_many(self, event_ids: Sequence[str]) -> list[bool]:
        """`is_published` for each id, in one round trip."""
        if not event_ids:
            return []
        conn = self._connection()
        with _translate():
            flags = await conn.published_many(args=[self._prefix, _json(event_ids)])
        return [flag == "1" for flag in flags]

    async def mark_published(self, event_id: str) -> None:
        conn = self._connection()
        token = self.holder_token(event_id) or "unclaimed"
        with _translate():
            outcome = await conn.mark_published(
                keys=[self._prefix + event_id], args=[token, self._published_ttl_ms]
            )
        self._held.pop(event_id, None)
        if outcome in (_OUTCOME_LOST, _OUTCOME_ALREADY_PUBLISHED):
            structlog.get_logger(__name__).warning(
                "dedupe.claim_lost",
                event_id=event_id,
                already_published=outcome == _OUTCOME_ALREADY_PUBLISHED,
            )

    async def release(self, event_id: str) -> None:
        conn = self._connection()
        held = self._held.pop(event_id, None)
        if held is None:
            return
        with _translate():
            await conn.release(keys=[self._prefix + event_id], args=[_CLAIMED + held[0]])

    async def is_published(self, event_id: str) -> bool:
        return (await self.published_token(event_id)) is not None

    async def published_token(self, event_id: str) -> str | None:
        """Token of the claim whose publish was recorded first, or None if not published."""
        conn = self._connection()
        with _translate():
            value = await conn.client.get(self._prefix + event_id)
        if isinstance(value, str) and value.startswith(_PUBLISHED):
            return value[len(_PUBLISHED) :]
        return None

    def holder_token(self, event_id: str) -> str | None:
        """Token of this instance's current claim, e.g. to attach to the published result."""
        held = self._held.get(event_id)
        return held[0] if held is not None else None
