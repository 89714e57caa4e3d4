"""Apache Kafka in KRaft combined mode (each node broker and controller), 1 or 3 nodes.

Why a real broker beside the embedded mock: transactions, replication, ``message.max.bytes``,
leader elections and process-level faults (SIGSTOP, SIGKILL and restart on the same data) only
mean something on Kafka itself. The jars come from Maven (``services/kafka-broker/pom.xml``,
exact versions) once per machine; the classpath Maven prints is cached.

Sizing: each node gets a bounded heap (384 MiB by default) and the serial collector, so three
nodes and the test suite fit together on 2 cores / 24 GiB. Internal topics get few partitions
(``offsets.topic.num.partitions``), because creating Kafka's default 50 costs seconds at the
first group join and buys nothing on one machine.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from services._paths import cache_dir, find_program
from services._process import ManagedProcess, free_port, port_open
from services.errors import ServiceError, ServiceNotInstalled, ServiceNotRunning

__all__ = ["KAFKA_VERSION", "KafkaCluster", "java_available", "kafka_classpath"]

KAFKA_VERSION = "4.1.1"
_POM = Path(__file__).resolve().parent / "kafka-broker" / "pom.xml"
_JAVA_HINT = "install OpenJDK 17 (Debian's openjdk-17-jre-headless)"
_MVN_HINT = "install Maven (Debian's maven) to fetch the Kafka jars once"
_ADMIN_TIMEOUT_S = 10.0
_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.state.name = state.change.logger
logger.state.level = warn
"""


def java_available() -> bool:
    """Whether this machine can run the real broker (Java, plus Maven or a cached classpath)."""
    if shutil.which("java") is None:
        return False
    return _classpath_file().exists() or shutil.which("mvn") is not None


def _classpath_file() -> Path:
    digest = hashlib.sha256(_POM.read_bytes()).hexdigest()[:16]
    return cache_dir() / f"kafka-{KAFKA_VERSION}-{digest}.classpath"


def kafka_classpath() -> str:
    """The broker's classpath; resolved by Maven on first use (tens of seconds), then cached.

    The cache is keyed by the POM's digest, so a version change resolves anew; a cached path
    whose jars were removed from Maven's repository is resolved again too.
    """
    cached = _classpath_file()
    if cached.exists():
        classpath = cached.read_text().strip()
        if all(Path(jar).exists() for jar in classpath.split(":")):
            return classpath
    mvn = find_program("mvn", hint=_MVN_HINT)
    partial = cached.with_suffix(".partial")
    done = subprocess.run(  # noqa: S603 - fixed argv
        [mvn, "-q", "-B", "-f", str(_POM), "dependency:build-classpath",
         f"-Dmdep.outputFile={partial}", "-Dmdep.includeScope=runtime"],
        capture_output=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0 or not partial.exists():
        output = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        raise ServiceNotInstalled(f"Maven could not resolve the Kafka jars:\n{output}")
    partial.replace(cached)
    return cached.read_text().strip()


def _cluster_id() -> str:
    """A random cluster id in Kafka's form (URL-safe base64 of 16 bytes).

    One starting with "-" is drawn again, as Kafka's own Uuid.randomUuid does: the storage
    tool's argument parser would read it as an option (1 start in 64 failed so).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class _Node:
    """One KRaft node: its ports, data directory and process."""

    def __init__(self, node_id: int, root: Path) -> None:
        self.node_id = node_id
        self.port = free_port()
        self.controller_port = free_port()
        self.dir = root / f"node-{node_id}"
        self.data = self.dir / "data"
        self.process: ManagedProcess | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive


class KafkaCluster:
    """A real Kafka cluster of ``nodes`` nodes on 127.0.0.1, at ``bootstrap_servers``.

    ``workdir`` keeps the nodes' data across runs (a temporary directory, removed on stop, is
    used when it is None): a node whose data is already formatted starts on it again.
    ``broker_config`` adds or overrides server properties for every node. With three nodes
    the defaults are production-shaped: replication factor 3 and ``min.insync.replicas`` 2 for
    new topics and for Kafka's internal topics.

    Fault methods act on one node's process: ``pause`` (SIGSTOP), ``resume`` (SIGCONT),
    ``kill`` (SIGKILL) and ``restart`` (start it again on the same data).
    """

    kind = "kafka"

    def __init__(
        self,
        nodes: int = 1,
        *,
        workdir: Path | None = None,
        heap_mb: int = 384,
        default_partitions: int = 4,
        broker_config: Mapping[str, str] | None = None,
        log_level: str = "INFO",
    ) -> None:
        if nodes not in (1, 3):
            raise ValueError("nodes must be 1 or 3")
        self.nodes = nodes
        self.heap_mb = heap_mb
        self.default_partitions = default_partitions
        self._extra = dict(broker_config or {})
        self._log_level = log_level
        self._workdir = workdir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._nodes: dict[int, _Node] = {}
        self._classpath: str | None = None
        self._java: str | None = None
        self._admin_client: AdminClient | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> None:
        self._java = find_program("java", hint=_JAVA_HINT)
        self._classpath = kafka_classpath()
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gw-kafka-")
            self._workdir = Path(self._tmp.name)
        self._nodes = {n: _Node(n, self._workdir) for n in range(1, self.nodes + 1)}
        cluster_id = _cluster_id()
        try:
            for node in self._nodes.values():
                self._write_config(node)
                # A kept workdir holds a formatted log: the node rejoins its own cluster.
                if not (node.data / "meta.properties").exists():
                    self._format(node, cluster_id)
            for node in self._nodes.values():
                self._spawn(node)
            self._wait_for_brokers(set(self._nodes), timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stops every node (SIGTERM, SIGKILL after 15 s) and removes a temporary workdir."""
        for node in self._nodes.values():
            if node.process is not None:
                node.process.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._workdir = None
        self._nodes = {}
        self._admin_client = None

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(node.alive for node in self._nodes.values())

    @property
    def bootstrap_servers(self) -> str:
        if not self._nodes:
            raise ServiceNotRunning("the Kafka cluster is not running")
        return ",".join(f"127.0.0.1:{node.port}" for node in self._nodes.values())

    @property
    def node_ids(self) -> list[int]:
        return list(self._nodes)

    @property
    def message_max_bytes(self) -> int:
        """The broker's ``message.max.bytes``: the largest record batch it accepts."""
        return int(self._properties()["message.max.bytes"])

    def log_path(self, node_id: int) -> Path:
        return self._node(node_id).dir / "kafka.log"

    # -- topics ------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replication: int | None = None,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Creates ``name`` and returns once every partition has a leader.

        An existing topic is left as it is: a kept workdir brings its topics back, and callers
        such as ``gateway kafka --topic`` ensure rather than create.
        """
        topic = NewTopic(
            name,
            num_partitions=partitions or self.default_partitions,
            replication_factor=replication or self.nodes,
            config=dict(config or {}),
        )
        futures = self._admin().create_topics([topic], operation_timeout=_ADMIN_TIMEOUT_S)
        try:
            futures[name].result(_ADMIN_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ServiceError(f"creating topic {name} failed: {exc}") from exc
            return
        self._wait_for_leaders(name, topic.num_partitions)

    def delete_topic(self, name: str) -> None:
        futures = self._admin().delete_topics([name], operation_timeout=_ADMIN_TIMEOUT_S)
        try:
            futures[name].result(_ADMIN_TIMEOUT_S)
        except KafkaException as exc:
            raise ServiceError(f"deleting topic {name} failed: {exc}") from exc

    def leader(self, topic: str, partition: int) -> int:
        """The node id currently leading ``topic``/``partition`` (-1 while none leads)."""
        meta = self._admin().list_topics(topic, timeout=_ADMIN_TIMEOUT_S)
        return int(meta.topics[topic].partitions[partition].leader)

    def in_sync_replicas(self, topic: str, partition: int) -> list[int]:
        meta = self._admin().list_topics(topic, timeout=_ADMIN_TIMEOUT_S)
        return [int(n) for n in meta.topics[topic].partitions[partition].isrs]

    # -- faults ------------------------------------------------------------------------

    def pause(self, node_id: int) -> None:
        """SIGSTOP: the node keeps its sockets open but answers nothing, as a GC stall or a
        frozen VM would."""
        self._process(node_id).signal(signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self._process(node_id).signal(signal.SIGCONT)

    def kill(self, node_id: int) -> None:
        """SIGKILL: no controlled shutdown, unflushed page-cache writes survive (same host)."""
        node = self._node(node_id)
        if node.process is not None:
            node.process.kill()

    def restart(self, node_id: int, timeout_s: float = 90.0) -> None:
        """Starts a killed node again on the data it had and waits until it serves."""
        self.start_node(node_id)
        self.wait_node(node_id, timeout_s)

    def start_node(self, node_id: int) -> None:
        """Spawns a killed node again on its data without waiting (see ``_process`` on why
        the spawning thread must outlive the node: async callers spawn on the loop's thread
        and wait in a worker with ``wait_node``)."""
        node = self._node(node_id)
        if node.alive:
            raise ServiceError(f"node {node_id} is still running")
        self._spawn(node)

    def wait_node(self, node_id: int, timeout_s: float = 90.0) -> None:
        """Blocks until ``node_id`` is registered with the cluster again."""
        self._wait_for_brokers({node_id}, timeout_s)

    # -- internals ---------------------------------------------------------------------

    def _node(self, node_id: int) -> _Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise ServiceNotRunning(f"no Kafka node {node_id} is running") from None

    def _process(self, node_id: int) -> ManagedProcess:
        process = self._node(node_id).process
        if process is None:
            raise ServiceNotRunning(f"Kafka node {node_id} is not running")
        return process

    def _properties(self, node: _Node | None = None) -> dict[str, str]:
        replicas = str(self.nodes)
        min_isr = "2" if self.nodes == 3 else "1"
        props = {
            "process.roles": "broker,controller",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.quorum.voters": ",".join(
                f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self._nodes.values()
            ),
            "num.partitions": str(self.default_partitions),
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "300",
            # Kafka refuses sessions under 6 s by default; failover tests evict a killed
            # member after 3 s, and a development broker has no reason to forbid that.
            "group.min.session.timeout.ms": "1000",
            "auto.create.topics.enable": "true",
            "message.max.bytes": "1048588",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "log.cleaner.threads": "1",
            "num.recovery.threads.per.data.dir": "1",
            "unclean.leader.election.enable": "false",
        }
        if node is not None:
            props.update(
                {
                    "node.id": str(node.node_id),
                    "listeners": (
                        f"PLAINTEXT://127.0.0.1:{node.port},"
                        f"CONTROLLER://127.0.0.1:{node.controller_port}"
                    ),
                    "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
                    "log.dirs": str(node.data),
                }
            )
        props.update(self._extra)
        return props

    def _write_config(self, node: _Node) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}={value}" for key, value in self._properties(node).items()]
        (node.dir / "server.properties").write_text("\n".join(lines) + "\n")
        (node.dir / "log4j2.properties").write_text(
            _LOG4J2.format(log=node.dir / "kafka.log", level=self._log_level)
        )

    def _java_argv(self, node: _Node, main: str, *args: str) -> list[str]:
        assert self._java is not None and self._classpath is not None
        return [
            self._java,
            "-Xms64m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node.dir}",
            "-cp",
            self._classpath,
            main,
            *args,
        ]

    def _format(self, node: _Node, cluster_id: str) -> None:
        argv = self._java_argv(
            node, "kafka.tools.StorageTool", "format", "-t", cluster_id,
            "-c", str(node.dir / "server.properties"),
        )  # fmt: skip
        done = subprocess.run(argv, capture_output=True, check=False)  # noqa: S603
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
            raise ServiceError(f"formatting Kafka node {node.node_id} failed:\n{output}")

    def _spawn(self, node: _Node) -> None:
        argv = self._java_argv(node, "kafka.Kafka", str(node.dir / "server.properties"))
        node.process = ManagedProcess(f"kafka node {node.node_id}", argv, node.dir / "jvm.log")
        node.process.spawn()

    def _admin(self) -> AdminClient:
        # One client for the cluster's life: a dropped AdminClient cancels its pending
        # futures, and librdkafka rides over dead nodes on its own.
        if not self._nodes:
            raise ServiceNotRunning("the Kafka cluster is not running")
        if self._admin_client is None:
            self._admin_client = AdminClient(
                {"bootstrap.servers": self.bootstrap_servers, "log_level": 0}
            )
        return self._admin_client

    def _wait_for_brokers(self, node_ids: set[int], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for node_id in node_ids:
            node = self._nodes[node_id]
            assert node.process is not None
            node.process.wait_ready(
                functools.partial(port_open, node.port), max(1.0, deadline - time.monotonic())
            )
        for node_id in node_ids:
            node = self._nodes[node_id]
            assert node.process is not None
            node.process.wait_ready(
                functools.partial(self._registered, node), max(1.0, deadline - time.monotonic())
            )

    def _registered(self, node: _Node) -> bool:
        """Whether ``node`` answers metadata and the cluster lists every node as a broker."""
        client = AdminClient({"bootstrap.servers": f"127.0.0.1:{node.port}", "log_level": 0})
        try:
            meta = client.list_topics(timeout=2.0)
        except KafkaException:
            return False
        return set(meta.brokers) >= {n.node_id for n in self._nodes.values() if n.alive}

    def _wait_for_leaders(self, name: str, partitions: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                meta = self._admin().list_topics(name, timeout=2.0)
            except KafkaException:
                meta = None
            topic = None if meta is None else meta.topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) == partitions
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                return
            time.sleep(0.1)
        raise ServiceError(f"topic {name} has partitions without a leader after {timeout_s} s")
