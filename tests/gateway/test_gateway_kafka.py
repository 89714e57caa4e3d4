"""Which broker `gateway up` / `gateway kafka` use, and `gateway kafka` as a real process: it
prints an address clients can produce to and consume from, and SIGTERM leaves no JVM behind."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from gateway_support import GATEWAY, ROOT

from core.config import ConfigError
from gateway.broker import choose_broker, configured_cluster, real_broker_missing

CLUSTER = ("kafka.example:9092", "KAFKA_BOOTSTRAP_SERVERS")


def _java_found() -> str | None:
    return None


def _no_java() -> str | None:
    return "no Java: install OpenJDK 17 for a real broker"


def _not_asked() -> str | None:
    raise AssertionError("the machine was probed although the choice did not depend on it")


@pytest.mark.parametrize(
    ("mode", "configured", "missing", "line"),
    [
        ("auto", CLUSTER, _not_asked, "kafka: KAFKA_BOOTSTRAP_SERVERS=kafka.example:9092"),
        ("auto", None, _java_found, "kafka: Apache Kafka 4.1.1 on 127.0.0.1:1 (Java found)"),
        (
            "auto",
            None,
            _no_java,
            "kafka: embedded mock broker on 127.0.0.1:1 "
            "(no Java: install OpenJDK 17 for a real broker)",
        ),
        ("real", None, _not_asked, "kafka: Apache Kafka 4.1.1 on 127.0.0.1:1 (--kafka real)"),
        ("mock", None, _not_asked, "kafka: embedded mock broker on 127.0.0.1:1 (--kafka mock)"),
    ],
)
def test_choose_broker_follows_the_table(
    mode: str, configured: tuple[str, str] | None, missing: object, line: str
) -> None:
    """A configured cluster wins, auto takes Apache Kafka when it can run, a forced mode holds."""
    choice = choose_broker(mode, configured, missing=missing)  # type: ignore[arg-type]
    servers = configured[0] if configured else "127.0.0.1:1"
    assert choice.describe(servers) == line


def test_a_forced_broker_contradicting_a_configured_cluster_is_a_config_error() -> None:
    """`--kafka mock` with KAFKA_BOOTSTRAP_SERVERS set is refused, naming both."""
    with pytest.raises(ConfigError, match=r"--kafka mock .* KAFKA_BOOTSTRAP_SERVERS"):
        choose_broker("mock", CLUSTER, missing=_not_asked)


def test_the_environment_names_the_cluster_before_the_config_file() -> None:
    """KAFKA_BOOTSTRAP_SERVERS beats gateway_settings.kafka.bootstrap_servers."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": "env:9092"}
    assert configured_cluster(env, "file:9092") == ("env:9092", "KAFKA_BOOTSTRAP_SERVERS")
    assert configured_cluster({}, "file:9092") == (
        "file:9092",
        "gateway_settings.kafka.bootstrap_servers",
    )
    assert configured_cluster({}, None) is None


def test_without_java_on_the_path_the_real_broker_is_missing_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no `java` to be found, the reason says to install OpenJDK 17."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert real_broker_missing() == "no Java: install OpenJDK 17 for a real broker"


class BrokerProcess:
    """A `gateway kafka` child and the lines it printed up to its KAFKA_BOOTSTRAP_SERVERS=."""

    def __init__(self, mode: str, *args: str) -> None:
        self.mode = mode
        self.process = subprocess.Popen(
            [str(GATEWAY), "kafka", "--kafka", mode, *args],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        while (line := lines.get(timeout=90)) is not None:
            self.lines.append(line)
            if line.startswith("KAFKA_BOOTSTRAP_SERVERS="):
                self.servers = line.partition("=")[2]
                return
        raise RuntimeError(f"gateway kafka exited before its address: {self.lines}")

    def _pump(self, lines: queue.Queue[str | None]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def jvms(self) -> set[int]:
        """The JVMs this process started (its children running java)."""
        found = set()
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text()
                exe = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except (OSError, NotADirectoryError):
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            if ppid == self.process.pid and exe.endswith(b"/java"):
                found.add(int(entry.name))
        return found


@pytest.fixture(scope="module")
def running(request: pytest.FixtureRequest) -> Iterator[BrokerProcess]:
    """`gateway kafka --kafka <mode> --topic gw-cli:2`, stopped for certain afterwards."""
    broker = BrokerProcess(request.param, "--topic", "gw-cli:2")
    yield broker
    if broker.process.poll() is None:
        broker.process.kill()
        broker.process.wait()


def _produce_and_consume(servers: str, topic: str) -> bytes:
    producer = Producer({"bootstrap.servers": servers, "log_level": 0})
    producer.produce(topic, b"hello broker", partition=1)
    assert producer.flush(30) == 0
    return _read_first(servers, topic, 1)


_MODES = ["mock", pytest.param("real", marks=pytest.mark.real_broker)]


@pytest.mark.parametrize("running", _MODES, indirect=True)
def test_gateway_kafka_serves_producers_and_consumers(running: BrokerProcess) -> None:
    """The printed address takes a record on a --topic topic and gives it back to a consumer."""
    assert _produce_and_consume(running.servers, "gw-cli") == b"hello broker"


@pytest.mark.parametrize("running", _MODES, indirect=True)
def test_gateway_kafka_names_the_broker_before_its_address(running: BrokerProcess) -> None:
    """The line before the address says which broker runs there and why."""
    name = {"real": "Apache Kafka 4.1.1", "mock": "embedded mock broker"}[running.mode]
    assert running.lines[-2] == f"kafka: {name} on {running.servers} (--kafka {running.mode})"


@pytest.mark.real_broker
@pytest.mark.parametrize("running", ["auto"], indirect=True)
def test_gateway_kafka_sigterm_leaves_no_jvm_behind(running: BrokerProcess) -> None:
    """On a machine with Java, auto runs a JVM; SIGTERM exits 0 and takes its process group."""
    assert running.lines[-2].endswith("(Java found)")
    (jvm,) = running.jvms()
    group = os.getpgid(jvm)
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=30) == 0
    assert not Path(f"/proc/{jvm}").exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)


def test_gateway_kafka_refuses_a_port_for_apache_kafka() -> None:
    """`--port` fixes the mock's port only; with `--kafka real` it exits 2 and says so."""
    done = subprocess.run(
        [str(GATEWAY), "kafka", "--kafka", "real", "--port", "9092"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert "--kafka mock" in done.stderr


@pytest.mark.real_broker
def test_gateway_kafka_data_keeps_records_across_runs(tmp_path: Path) -> None:
    """With --kafka-data, a record produced in one run is read back in the next."""
    data = tmp_path / "kafka-data"
    for run in range(2):
        broker = BrokerProcess("real", "--topic", "kept:2", "--kafka-data", str(data))
        try:
            if run == 0:
                producer = Producer({"bootstrap.servers": broker.servers, "log_level": 0})
                producer.produce("kept", b"from the first run", partition=1)
                assert producer.flush(30) == 0
            else:
                assert _read_first(broker.servers, "kept", 1) == b"from the first run"
        finally:
            broker.process.send_signal(signal.SIGTERM)
            assert broker.process.wait(timeout=30) == 0


def _read_first(servers: str, topic: str, partition: int) -> bytes:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "gw-kept", "log_level": 0})
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return bytes(message.value())
        raise AssertionError("no record came back")
    finally:
        consumer.close()
