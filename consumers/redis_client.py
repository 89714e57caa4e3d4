"""One way to open the Redis client the dedupe store uses.

Why one module: its stores need the same connection behaviour (connect and operation timeouts, and a
BLOCKING pool, so a burst of concurrent calls beyond the pool size waits for a free connection
instead of failing with MaxConnectionsError), and each must close the client when the first
probe fails. Each caller keeps its own error translation, passed in as a context manager.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import redis.asyncio as aioredis
import redis.exceptions as redis_errors

__all__ = ["open_redis", "redis_errors_as"]


def redis_errors_as(
    unavailable: type[Exception], backend: type[Exception]
) -> Callable[[], AbstractContextManager[None]]:
    """A context manager factory translating Redis client errors into a package's own tree:
    connection and timeout failures become `unavailable` (retriable), the rest `backend`."""

    @contextmanager
    def translate() -> Iterator[None]:
        try:
            yield
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise unavailable(f"redis unreachable: {type(exc).__name__}") from exc
        except redis_errors.RedisError as exc:
            raise backend(f"redis error: {type(exc).__name__}: {exc}") from exc

    return translate


async def open_redis(
    url: str,
    *,
    connect_timeout_s: float,
    op_timeout_s: float,
    max_connections: int,
    probe: Callable[[aioredis.Redis], Awaitable[object]],
    translate: Callable[[], AbstractContextManager[None]],
) -> aioredis.Redis:
    """A started client whose `probe` (a PING, a script load) succeeded; errors translated."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=op_timeout_s,
        max_connections=max_connections,
        timeout=op_timeout_s,  # how long a call waits for a free pooled connection
    )
    client = aioredis.Redis.from_pool(pool)
    try:
        with translate():
            await probe(client)
    except BaseException:
        await client.aclose()
        raise
    return client
