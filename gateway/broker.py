"""Which Kafka broker the `gateway` commands use, and the local one they start.

Why one module: `up`, `consume` and `kafka` make the same choice, and it must read the same
everywhere. A configured cluster (`KAFKA_BOOTSTRAP_SERVERS` or
`gateway_settings.kafka.bootstrap_servers`) always wins; otherwise a real Apache Kafka is
started when Java and the broker's jars are present (the set-up fetches them once), and
librdkafka's mock broker otherwise. The mock stays the fallback and the broker for
protocol-level fault injection, which only it offers.

    mode   configured cluster   Java + jars   broker
    auto   yes                  -             the configured cluster
    auto   no                   yes           Apache Kafka (a JVM child of this process)
    auto   no                   no            the embedded mock, with how to get a real one
    real   no                   -             Apache Kafka, or an error saying what is missing
    mock   no                   -             the embedded mock
    real / mock with a configured cluster     a ConfigError: the two contradict each other

Only `choose_broker` decides; `LocalBroker` starts what it chose. The heavy imports (the
librdkafka mock, the Kafka launcher) happen in `LocalBroker.start`, so `gateway --help` stays
instant.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from core.config import ConfigError

__all__ = [
    "BOOTSTRAP_ENV",
    "BROKER_MODES",
    "BrokerChoice",
    "BrokerMode",
    "LocalBroker",
    "choose_broker",
    "configured_cluster",
    "real_broker_missing",
]

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
BrokerMode = Literal["auto", "real", "mock"]
BROKER_MODES: tuple[BrokerMode, ...] = ("auto", "real", "mock")
_NO_JAVA = "no Java: install OpenJDK 17 for a real broker"
_NO_JARS = "Java found, but no Kafka jars: run ./dev once, or install Maven"


@dataclass(frozen=True, slots=True)
class BrokerChoice:
    """The broker to use and why, as the start-up line says it.

    `kind` is "configured" (someone else's cluster at `servers`), "real" (Apache Kafka started
    here) or "mock" (librdkafka's mock started here). `fallback` is whether a "real" choice may
    become "mock" when the broker's jars cannot be had after all (auto mode only).
    """

    kind: Literal["configured", "real", "mock"]
    why: str
    servers: str | None = None
    fallback: bool = False

    def describe(self, servers: str) -> str:
        """The one start-up line naming the broker, its address and the reason for it."""
        if self.kind == "configured":
            return f"kafka: {self.why}={servers}"
        from services import KAFKA_VERSION  # noqa: PLC0415 - the launcher imports librdkafka

        name = f"Apache Kafka {KAFKA_VERSION}" if self.kind == "real" else "embedded mock broker"
        return f"kafka: {name} on {servers} ({self.why})"


def configured_cluster(
    environ: Mapping[str, str], from_config: str | None
) -> tuple[str, str] | None:
    """`(servers, where they were set)`: the environment first, then the config file."""
    if servers := environ.get(BOOTSTRAP_ENV):
        return servers, BOOTSTRAP_ENV
    if from_config:
        return from_config, "gateway_settings.kafka.bootstrap_servers"
    return None


def real_broker_missing() -> str | None:
    """Why this machine cannot run Apache Kafka, or None when it can."""
    from services import java_available  # noqa: PLC0415 - the launcher imports librdkafka

    if java_available():
        return None
    return _NO_JARS if shutil.which("java") else _NO_JAVA


def choose_broker(
    mode: BrokerMode,
    configured: tuple[str, str] | None,
    *,
    missing: Callable[[], str | None] = real_broker_missing,
) -> BrokerChoice:
    """The broker for `mode` (see the table in the module docstring)."""
    if configured is not None:
        servers, where = configured
        if mode != "auto":
            raise ConfigError(
                f"--kafka {mode} starts a local broker, but {where} names a cluster "
                f"({servers}); drop one of the two"
            )
        return BrokerChoice("configured", where, servers=servers)
    if mode == "mock":
        return BrokerChoice("mock", "--kafka mock")
    if mode == "real":
        return BrokerChoice("real", "--kafka real")
    reason = missing()
    if reason is None:
        return BrokerChoice("real", "Java found", fallback=True)
    return BrokerChoice("mock", reason)


class _Broker(Protocol):
    """What `EmbeddedKafka` and `services.KafkaCluster` have in common."""

    @property
    def bootstrap_servers(self) -> str: ...

    def stop(self) -> None: ...

    def create_topic(self, name: str, partitions: int | None = None) -> None: ...


class LocalBroker:
    """The broker a "real" or "mock" choice names, started and stopped by this process.

    `start()` and `stop()` block (a JVM takes seconds either way) and must run on the main
    thread: the JVM is killed by the kernel when the thread that started it ends
    (`services._process`), so a worker thread would take it down early. `choice` may change
    from "real" to "mock" during `start()` when the choice allows a fallback.
    """

    def __init__(
        self,
        choice: BrokerChoice,
        *,
        default_partitions: int = 4,
        mock_port: int = 0,
        data_dir: Path | None = None,
    ) -> None:
        if choice.kind == "configured":
            raise ValueError("a configured cluster is not started here")
        self.choice = choice
        self._data_dir = data_dir
        self._partitions = default_partitions
        self._mock_port = mock_port
        self._broker: _Broker | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._broker is None:
            raise RuntimeError("the broker has not started")
        return self._broker.bootstrap_servers

    def describe(self) -> str:
        return self.choice.describe(self.bootstrap_servers)

    def start(self) -> None:
        if self.choice.kind == "real":
            from services import KafkaCluster, ServiceNotInstalled  # noqa: PLC0415

            # Without a data directory the data lives in a temporary one that stop() removes;
            # with one, the next run starts on the records this one left.
            cluster = KafkaCluster(1, default_partitions=self._partitions, workdir=self._data_dir)
            try:
                cluster.start()
            except ServiceNotInstalled as exc:
                if not self.choice.fallback:
                    raise
                # Java is there but the jars could not be resolved (offline, no Maven cache):
                # the mock still runs the product, and the line says what went wrong.
                first_line = str(exc).splitlines()[0]
                self.choice = replace(self.choice, kind="mock", why=first_line)
            else:
                self._broker = cluster
                return
        from emulators.kafka import EmbeddedKafka  # noqa: PLC0415 - development only

        mock = EmbeddedKafka(brokers=1, port=self._mock_port, default_partitions=self._partitions)
        mock.start()
        self._broker = mock

    def stop(self) -> None:
        """Stops the broker; a JVM gets SIGTERM, then SIGKILL if it lingers."""
        if self._broker is not None:
            self._broker.stop()
            self._broker = None

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        if self._broker is None:
            raise RuntimeError("the broker has not started")
        self._broker.create_topic(name, partitions)
