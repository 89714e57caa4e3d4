"""The Kafka side of `gateway up`: a broker (embedded unless one is configured) and consumers.

Why it lives beside the proxy's components: `up` is the one command that runs the whole product
on a laptop, so it composes the event pipeline with the proxy it calls. The consumers reach the
proxy over HTTP like any other client; nothing here shares state with the proxy in-process.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import structlog

if TYPE_CHECKING:
    from consumers import ConsumerService, KafkaSettings
    from emulators.kafka import EmbeddedKafka

__all__ = ["BOOTSTRAP_ENV", "ConsumersComponent", "KafkaComponent"]

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


class KafkaComponent:
    """The configured Kafka cluster, or the embedded broker when none is configured.

    Either way the configured topics exist once `start()` returns, so consumers and producers
    never depend on auto-creation.
    """

    name = "kafka"

    def __init__(self, config: Path, environ: MutableMapping[str, str]) -> None:
        from consumers.settings import load_kafka_settings  # noqa: PLC0415 - optional stack

        self._environ = environ
        settings = load_kafka_settings(config)
        configured = environ.get(BOOTSTRAP_ENV) or settings.bootstrap_servers
        self.settings: KafkaSettings = msgspec.structs.replace(
            settings, bootstrap_servers=configured
        )
        self.embedded = configured is None
        self._broker: EmbeddedKafka | None = None

    @property
    def bootstrap_servers(self) -> str:
        servers = self.settings.bootstrap_servers
        if servers is None:
            raise RuntimeError("the Kafka component has not started")
        return servers

    async def start(self) -> None:
        from consumers.cli import ensure_topics  # noqa: PLC0415 - optional stack

        if self.embedded:
            from emulators.kafka import EmbeddedKafka  # noqa: PLC0415 - development only

            self._broker = EmbeddedKafka(brokers=1)
            self._broker.start()
            servers = self._broker.bootstrap_servers
            self.settings = msgspec.structs.replace(self.settings, bootstrap_servers=servers)
            # Child processes (`gateway send`, extra `gateway consume`) find the broker here.
            self._environ[BOOTSTRAP_ENV] = servers
        created = await ensure_topics(self.settings, self.bootstrap_servers)
        structlog.get_logger(__name__).info(
            "kafka.ready",
            bootstrap_servers=self.bootstrap_servers,
            embedded=self.embedded,
            topics_created=created,
        )

    async def stop(self) -> None:
        if self._broker is not None:
            self._broker.stop()
            self._broker = None


class ConsumersComponent:
    """A consumer service whose handler calls this gateway's proxy with its master key."""

    name = "consumers"

    def __init__(
        self, kafka: KafkaComponent, *, proxy_url: Callable[[], str], master_key: str
    ) -> None:
        # The proxy's URL is known only once it has bound its port, hence a callable.
        self._kafka = kafka
        self._proxy_url = proxy_url
        self._master_key = master_key
        self._service: ConsumerService | None = None

    async def start(self) -> None:
        from consumers import ConsumerService  # noqa: PLC0415 - optional stack
        from consumers.proxy_handler import ProxyCompletionHandler  # noqa: PLC0415

        settings = self._kafka.settings
        proxy = msgspec.structs.replace(settings.proxy, url=self._proxy_url())
        handler = ProxyCompletionHandler.from_settings(proxy, api_key=self._master_key)
        self._service = ConsumerService(
            msgspec.structs.replace(settings, proxy=proxy),
            handler,
            bootstrap_servers=self._kafka.bootstrap_servers,
        )
        await self._service.start()

    async def stop(self) -> None:
        if self._service is not None:
            await self._service.stop()
            self._service = None
