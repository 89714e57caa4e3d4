"""Helpers shared by the runtime tests: settings for fast tests, producing and reading events."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from consumers import KafkaSettings
from consumers.settings import ConsumerTuning, RetrySettings, TopicSettings, TopicsSettings
from schemas import (
    ChatMessage,
    CompletionRequested,
    EventCodec,
    Request,
    ResultEvent,
    build_headers,
    event_type_of,
)

CODEC = EventCodec()
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


# Redis namespaces handed out by fast_settings(); the autouse fixture in conftest.py deletes
# their keys after each test so runs do not accumulate dedupe and rate-limit state.
NAMESPACES: list[str] = []
# URL of the session's throw-away Redis, set by the autouse fixture in conftest.py before any
# test runs; fast_settings() points dedupe and rate limits at it.
REDIS_URL: list[str] = []


def fast_settings(
    broker: Any, *, partitions: int = 4, group: str | None = None, **overrides: Any
) -> KafkaSettings:
    """Settings with fresh topics and timings short enough for tests."""
    tag = uuid.uuid4().hex[:8]
    topics = TopicsSettings(
        requests=TopicSettings(name=f"req-{tag}", partitions=partitions),
        results=TopicSettings(name=f"res-{tag}", partitions=partitions),
        status=TopicSettings(name=f"st-{tag}", partitions=2),
        dead_letters=TopicSettings(name=f"dlq-{tag}", partitions=2),
    )
    for topic in topics.all():
        broker.create_topic(topic.name, topic.partitions)
    base: dict[str, Any] = {
        "bootstrap_servers": broker.bootstrap_servers,
        "group_id": group or f"g-{tag}",
        "topics": topics,
        "commit_interval_s": 0.2,
        "drain_timeout_s": 5.0,
        "revoke_timeout_s": 3.0,
        "dedupe_redis_url": REDIS_URL[0],
        "rate_limit_redis_url": REDIS_URL[0],
        "dedupe_namespace": f"test-dedupe-{tag}",
        "rate_limit_namespace": f"test-rl-{tag}",
        "dedupe_claim_ttl_s": 3.0,
        "retry": RetrySettings(initial_backoff_s=0.01, max_backoff_s=0.05, max_attempts=3),
        "consumer": ConsumerTuning(
            fetch_max_wait_ms=50, session_timeout_ms=6000, heartbeat_interval_ms=500
        ),
    }
    base.update(overrides)
    NAMESPACES.extend([base["dedupe_namespace"], base["rate_limit_namespace"]])
    return msgspec.convert(msgspec.to_builtins(base), KafkaSettings)


def subject_for(partition: int, partitions: int) -> str:
    """A subject whose key the producer's default partitioner places on ``partition``."""
    for n in itertools.count():
        subject = f"subject-{partition}-{n}"
        if (murmur2(subject.encode()) & 0x7FFFFFFF) % partitions == partition:
            return subject
    raise AssertionError("unreachable")


def request(text: str, *, subject: str | None = None, task: str = "captioning") -> Any:
    return CompletionRequested(
        event_id=str(uuid.uuid4()),
        subject=subject or str(uuid.uuid4()),
        task=task,
        messages=[ChatMessage(role="user", content=text)],
    )


async def produce(
    bootstrap: str, topic: str, events: Iterable[Any], *, raw: Iterable[bytes] = ()
) -> None:
    """Publish request events (keyed by subject, with CloudEvents headers) and raw values."""
    # acks="all": on a replicated cluster a test that kills a leader must not lose its input.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = []
        for event in events:
            headers = build_headers(
                event_id=event.event_id, event_type="completion.requested", source="urn:test"
            )
            futures.append(
                await producer.send(
                    topic, CODEC.encode(event), key=event.subject.encode(), headers=headers
                )
            )
        for value in raw:
            futures.append(await producer.send(topic, value, key=b"raw"))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def send_requests(
    bootstrap: str, topic: str, codec: EventCodec, events: Iterable[Request]
) -> None:
    """Publish request events of any kind, one at a time: each encoded by `codec`, keyed by
    subject, with CloudEvents headers naming its own event type."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            headers = build_headers(
                event_id=event.event_id, event_type=event_type_of(event), source="urn:test"
            )
            await producer.send_and_wait(
                topic, codec.encode(event), key=event.subject.encode(), headers=headers
            )
    finally:
        await producer.stop()


class TopicReader:
    """Reads a topic from the beginning and keeps every record it saw."""

    def __init__(
        self, bootstrap: str, topic: str, *, isolation_level: str = "read_uncommitted"
    ) -> None:
        # read_committed: what readers of the transactions mode must use.
        self.records: list[Any] = []
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
            isolation_level=isolation_level,
        )

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=100)
        for records in batches.values():
            self.records.extend(records)

    async def until(self, predicate: Any, timeout_s: float = 20.0) -> None:
        """Poll until `predicate(self)` holds, failing after `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate(self):
            if loop.time() > deadline:
                raise AssertionError(
                    f"condition not met after {timeout_s}s ({len(self.records)} records)"
                )
            await self.poll()

    def results(self) -> list[ResultEvent]:
        return [CODEC.decode_result(record.value) for record in self.records]


async def await_markers(servers: str, settings: Any, reader: TopicReader) -> None:
    """Sends one marker event per partition behind the stream and waits for their results.

    Each partition is settled in offset order, so a marker's result means everything before
    it on its partition was finished: a late duplicate would have arrived by then. This is
    how tests check for absence without sleeping. The markers' results are removed from the
    reader afterwards.
    """
    partitions = settings.topics.requests.partitions
    markers = [
        request(f"marker {p}", subject=subject_for(p, partitions)) for p in range(partitions)
    ]
    ids = {m.event_id for m in markers}
    await produce(servers, settings.topics.requests.name, markers)
    await reader.until(lambda rd: ids <= {r.request_id for r in rd.results()}, timeout_s=30)
    reader.records = [
        rec for rec in reader.records if CODEC.decode_result(rec.value).request_id not in ids
    ]


def assert_exactly_once(reader: TopicReader, events: list[Any]) -> None:
    """Every event has exactly one result in ``reader``, and no other result is there."""
    counts = Counter(result.request_id for result in reader.results())
    missing = [e.event_id for e in events if counts[e.event_id] == 0]
    duplicated = {k: n for k, n in counts.items() if n > 1}
    assert not missing, f"{len(missing)} events lost"
    assert not duplicated, f"duplicated results: {duplicated}"
    assert set(counts) == {e.event_id for e in events}


async def survive_repeated_sigkill(
    settings: KafkaSettings, tmp_path: Path, *, isolation_level: str = "read_uncommitted"
) -> None:
    """Three SIGKILLs of a consumer process mid-stream, each followed by a restart, over 300
    events: asserts one result each (read with ``isolation_level``)."""
    assert settings.bootstrap_servers is not None
    servers = settings.bootstrap_servers
    config = write_config(settings, tmp_path / "config.yaml")
    events = [request(f"item {i}") for i in range(300)]

    def spawn() -> ConsumerProcess:
        return ConsumerProcess(
            config,
            handler="consumer_handlers:SlowEcho",
            options={"delay_ms": "40"},
            log=tmp_path / "consumer.log",
        )

    proc = await spawn().start()
    try:
        await produce(servers, settings.topics.requests.name, events)
        results = settings.topics.results.name
        async with TopicReader(servers, results, isolation_level=isolation_level) as reader:
            for threshold in (30, 110, 190):
                await reader.until(lambda rd, t=threshold: len(rd.records) >= t, timeout_s=30)
                proc.kill()
                await proc.wait()
                proc = await spawn().start()
            await reader.until(
                lambda rd: {r.request_id for r in rd.results()} >= {e.event_id for e in events},
                timeout_s=40,
            )
            # A late duplicate (an expired claim republishing) would come from a record before
            # the markers, so once every partition's marker has its result there is none left.
            await await_markers(servers, settings, reader)
            proc.terminate()
            assert await proc.wait() == 0
        assert_exactly_once(reader, events)
    finally:
        await proc.stop()


def write_config(settings: KafkaSettings, path: Path) -> Path:
    """Write `settings` as gateway_settings.kafka of a config file (JSON is valid YAML)."""
    body = {"gateway_settings": {"kafka": msgspec.to_builtins(settings)}}
    path.write_bytes(msgspec.json.encode(body))
    return path


class ConsumerProcess:
    """A `python -m gateway consume` subprocess running a test handler."""

    def __init__(
        self, config: Path, *, handler: str | None, options: dict[str, str], log: Path
    ) -> None:
        self._args = [sys.executable, "-m", "gateway", "consume", "--config", str(config)]
        if handler is not None:
            self._args += ["--handler", handler]
        for key, value in options.items():
            self._args += ["--handler-option", f"{key}={value}"]
        self._log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout_s: float = 20.0) -> ConsumerProcess:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
        }
        with self._log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self._args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        if b"consumer ready" not in line:
            raise AssertionError(f"consumer did not start: {self._log.read_text()[-2000:]}")
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def wait(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    async def stop(self) -> None:
        """SIGKILL if still running (test cleanup)."""
        if self.proc is not None and self.proc.returncode is None:
            self.kill()
            await self.proc.wait()
