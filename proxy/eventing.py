"""The Kafka side of `gateway up`: a broker (see `proxy.broker` for which) and consumers.

Why it lives beside the proxy's components: `up` is the one command that runs the whole product
on a laptop, so it composes the event pipeline with the proxy it calls. The consumers reach the
proxy over HTTP like any other client; nothing here shares state with the proxy in-process.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from proxy.broker import BOOTSTRAP_ENV, BrokerMode, LocalBroker, choose_broker, configured_cluster
from proxy.components import safe_url

if TYPE_CHECKING:
    from consumers import KafkaSettings

__all__ = ["REDIS_ENV", "ConsumersComponent", "KafkaComponent"]

REDIS_ENV = "REDIS_URL"


class KafkaComponent:
    """The configured Kafka cluster, or a broker started here when none is configured.

    Either way the configured topics exist once `start()` returns, so consumers and producers
    never depend on auto-creation. `REDIS_URL`, when set, replaces the config's Redis URLs for
    dedupe and rate limits, as it does for `gateway consume`.
    """

    name = "kafka"

    def __init__(
        self,
        config: Path,
        environ: MutableMapping[str, str],
        *,
        mode: BrokerMode = "auto",
        data_dir: Path | None = None,
    ) -> None:
        from consumers.settings import load_kafka_settings  # noqa: PLC0415 - optional stack

        self._environ = environ
        settings = load_kafka_settings(config)
        configured = configured_cluster(environ, settings.bootstrap_servers)
        self.choice = choose_broker(mode, configured)
        changes: dict[str, Any] = {"bootstrap_servers": self.choice.servers}
        self.redis_source = "gateway_settings.kafka"
        if redis_url := environ.get(REDIS_ENV):
            # One Redis holds both the dedupe records and the shared rate-limit buckets.
            changes |= {"dedupe_redis_url": redis_url, "rate_limit_redis_url": redis_url}
            self.redis_source = REDIS_ENV
        self.settings: KafkaSettings = msgspec.structs.replace(settings, **changes)
        self._broker: LocalBroker | None = None
        self._data_dir = data_dir

    @property
    def bootstrap_servers(self) -> str:
        servers = self.settings.bootstrap_servers
        if servers is None:
            raise RuntimeError("the Kafka component has not started")
        return servers

    def describe(self) -> list[str]:
        """The start-up line: which broker, where, and why that one."""
        return [self.choice.describe(self.bootstrap_servers)]

    async def start(self) -> None:
        from consumers.cli import ensure_topics  # noqa: PLC0415 - optional stack

        if self.choice.kind != "configured":
            broker = LocalBroker(self.choice, data_dir=self._data_dir)
            # Blocks the loop for the JVM's few seconds on purpose: it must be started from
            # this (the main) thread, see LocalBroker; nothing is served before "ready" anyway.
            broker.start()
            self._broker = broker
            self.choice = broker.choice
            servers = broker.bootstrap_servers
            self.settings = msgspec.structs.replace(self.settings, bootstrap_servers=servers)
            # Child processes (`gateway send`, extra `gateway consume`) find the broker here.
            self._environ[BOOTSTRAP_ENV] = servers
        created = await ensure_topics(self.settings, self.bootstrap_servers)
        structlog.get_logger(__name__).info(
            "kafka.ready",
            bootstrap_servers=self.bootstrap_servers,
            broker=self.choice.kind,
            topics_created=created,
        )

    async def stop(self) -> None:
        if self._broker is not None:
            self._broker.stop()
            self._broker = None


class ConsumersComponent:
    """A consumer service whose handler calls this gateway's proxy with its master key.

    It opens the dedupe store and the rate limiter itself (the service's seam for handing
    them in), so that the start-up lines can say which ones are in use.
    """

    name = "consumers"

    def __init__(
        self, kafka: KafkaComponent, *, proxy_url: Callable[[], str], master_key: str
    ) -> None:
        # The proxy's URL is known only once it has bound its port, hence a callable.
        self._kafka = kafka
        self._proxy_url = proxy_url
        self._master_key = master_key
        self._stack: AsyncExitStack | None = None
        self._lines: list[str] = []

    def describe(self) -> list[str]:
        """Start-up lines: the topics, and the dedupe store and rate limiter in use."""
        topics = self._kafka.settings.topics
        return [
            f"gateway: consumers read {topics.requests.name}, write {topics.results.name} / "
            f"{topics.status.name} / {topics.dead_letters.name}",
            *self._lines,
        ]

    async def start(self) -> None:
        from consumers import ConsumerService  # noqa: PLC0415 - optional stack
        from consumers.dedupe import RedisDedupeStore, open_dedupe_store  # noqa: PLC0415
        from consumers.proxy_handler import ProxyCompletionHandler  # noqa: PLC0415
        from consumers.ratelimit import RedisRateLimiter, open_rate_limiter  # noqa: PLC0415

        settings = self._kafka.settings
        proxy = msgspec.structs.replace(settings.proxy, url=self._proxy_url())
        settings = msgspec.structs.replace(settings, proxy=proxy)
        handler = ProxyCompletionHandler.from_settings(proxy, api_key=self._master_key)
        async with AsyncExitStack() as stack:
            dedupe = await open_dedupe_store(
                settings.dedupe_redis_url,
                namespace=settings.dedupe_namespace,
                claim_ttl_s=settings.dedupe_claim_ttl_s,
            )
            stack.push_async_callback(dedupe.stop)
            limiter = await open_rate_limiter(
                settings.rate_limit_redis_url, namespace=settings.rate_limit_namespace
            )
            stack.push_async_callback(limiter.stop)
            service = ConsumerService(
                settings,
                handler,
                bootstrap_servers=self._kafka.bootstrap_servers,
                dedupe=dedupe,
                limiter=limiter,
            )
            await service.start()
            stack.push_async_callback(service.stop)
            self._stack = stack.pop_all()
        source = self._kafka.redis_source
        self._lines = [
            _store_line(
                "dedupe", settings.dedupe_redis_url, isinstance(dedupe, RedisDedupeStore), source
            ),
            _store_line(
                "rate limits",
                settings.rate_limit_redis_url,
                isinstance(limiter, RedisRateLimiter),
                source,
            ),
        ]

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None


def _store_line(what: str, url: str | None, on_redis: bool, source: str) -> str:
    if on_redis and url is not None:
        return f"{what}: Redis at {safe_url(url)} ({source})"
    why = "no Redis configured" if url is None else f"Redis at {safe_url(url)} unreachable"
    return f"{what}: in-process ({why}; set {REDIS_ENV} to share it between consumers)"
