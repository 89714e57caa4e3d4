"""The event pipeline's components: a Kafka broker and the consumers reading from it.

Why one module for both: `gateway up` and `gateway consume` start the same two, in the same
way: the same broker choice (`gateway.broker`), the same topic creation
(`consumers.topics.ensure_topics`), the same handlers (`consumers.handler_config`), the same
Redis. The consumers reach the proxy over HTTP like any other client; nothing here shares
state with the proxy in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

import msgspec
import structlog

from consumers.settings import KafkaSettings
from core.config import ConfigError
from gateway.broker import BrokerChoice, LocalBroker, choose_broker
from gateway.components import store_line
from gateway.settings import StackSettings

__all__ = ["ConsumersComponent", "KafkaComponent"]

_TRANSACTIONS_NEED_KAFKA = (
    "exactly_once: transactions needs a real Kafka cluster (--bootstrap, "
    "KAFKA_BOOTSTRAP_SERVERS, kafka.bootstrap_servers or --kafka real); the embedded mock "
    "broker supports only exactly_once: dedupe"
)


class KafkaComponent:
    """The configured Kafka cluster, or a broker started here when none is configured.

    Either way the configured topics exist once `start()` returns, so consumers and producers
    never depend on auto-creation.
    """

    name = "kafka"

    def __init__(self, settings: StackSettings) -> None:
        self._stack = settings
        self.choice: BrokerChoice = choose_broker(settings.broker_mode, settings.cluster)
        self.settings: KafkaSettings = settings.kafka
        self._broker: LocalBroker | None = None

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
        from consumers.topics import ensure_topics  # noqa: PLC0415 - imports aiokafka's admin

        transactions = self.settings.exactly_once == "transactions"
        if self.choice.kind == "mock" and transactions:
            raise ConfigError(_TRANSACTIONS_NEED_KAFKA)
        if self.choice.kind != "configured":
            broker = LocalBroker(self.choice, data_dir=self._stack.kafka_data)
            # Blocks the loop for the JVM's few seconds on purpose: it must be started from
            # this (the main) thread, see LocalBroker; nothing is served before "ready" anyway.
            broker.start()
            self._broker = broker
            self.choice = broker.choice
            if self.choice.kind == "mock" and transactions:  # Apache Kafka fell back to it
                raise ConfigError(_TRANSACTIONS_NEED_KAFKA)
            servers = broker.bootstrap_servers
            self.settings = msgspec.structs.replace(self.settings, bootstrap_servers=servers)
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
    """A consumer service running the configured handlers (by default: the proxy's client).

    It opens the dedupe store itself (the service's seam for handing it in), so that the
    start-up lines can say which one is in use.
    """

    name = "consumers"

    def __init__(
        self,
        settings: StackSettings,
        kafka: KafkaComponent,
        *,
        proxy_url: Callable[[], str] | None = None,
        trusted_urls: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        # With a proxy in this process its URL is known only once it has bound its port,
        # hence a callable; without one, the configured (or --proxy-url) URL stands.
        self._stack = settings
        self._kafka = kafka
        # The emulators' URLs under `gateway up`: their output links point at loopback.
        self._trusted_urls = trusted_urls
        self._proxy_url = proxy_url
        self._exit: AsyncExitStack | None = None
        self._lines: list[str] = []

    @property
    def group_id(self) -> str:
        return self._kafka.settings.group_id

    def describe(self) -> list[str]:
        """Start-up lines: the topics, and the dedupe store in use."""
        topics = self._kafka.settings.topics
        return [
            f"gateway: consumers read {topics.requests.name}, write {topics.results.name} / "
            f"{topics.status.name} / {topics.dead_letters.name}",
            *self._lines,
        ]

    async def start(self) -> None:
        # Imported here: `gateway --help` and `gateway kafka` need none of the runtime.
        from consumers import ConsumerService  # noqa: PLC0415
        from consumers.dedupe import (  # noqa: PLC0415
            DedupeStore,
            RedisDedupeStore,
            open_dedupe_store,
        )
        from consumers.handler_config import build_registry  # noqa: PLC0415

        settings = self._kafka.settings
        if self._proxy_url is not None:
            proxy = msgspec.structs.replace(settings.proxy, url=self._proxy_url())
            settings = msgspec.structs.replace(settings, proxy=proxy)
        registry = build_registry(
            settings,
            proxy_api_key=self._stack.master_key,
            handler_options=self._stack.handler_options,
            redactor=self._stack.redactor,
            config_path=self._stack.config,
            environ=self._stack.environ,
            fetch_allow=_hosts(self._trusted_urls() if self._trusted_urls else ()),
        )
        source = self._stack.redis_source
        lines: list[str] = []
        async with AsyncExitStack() as exit_stack:
            dedupe: DedupeStore | None = None
            # Transactions mode settles through Kafka transactions and keeps no dedupe records.
            if settings.exactly_once == "dedupe":
                dedupe = await open_dedupe_store(
                    settings.dedupe_redis_url,
                    namespace=settings.dedupe_namespace,
                    claim_ttl_s=settings.dedupe_claim_ttl_s,
                )
                exit_stack.push_async_callback(dedupe.stop)
                on_redis = isinstance(dedupe, RedisDedupeStore)
                lines.append(store_line("dedupe", settings.dedupe_redis_url, on_redis, source))
            service = ConsumerService(
                settings,
                registry,
                bootstrap_servers=self._kafka.bootstrap_servers,
                dedupe=dedupe,
                redactor=self._stack.redactor,
            )
            await service.start()
            exit_stack.push_async_callback(service.stop)
            self._exit = exit_stack.pop_all()
        self._lines = lines

    async def stop(self) -> None:
        if self._exit is not None:
            await self._exit.aclose()
            self._exit = None


def _hosts(urls: Sequence[str]) -> list[str]:
    """The host part of each URL, once each (the guarded fetcher allows by host)."""
    hosts = {urlsplit(url).hostname for url in urls}
    return sorted(h for h in hosts if h)
