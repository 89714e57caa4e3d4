"""Crash safety of consumer PROCESSES: SIGKILL mid-batch, restarts, and group failover, each on
the embedded broker and on a real Kafka node (``event_broker``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from consumer_support import (
    ConsumerProcess,
    TopicReader,
    assert_exactly_once,
    await_markers,
    fast_settings,
    produce,
    request,
    survive_repeated_sigkill,
    write_config,
)

from consumers.settings import ConsumerTuning

pytestmark = pytest.mark.slow

# Short sessions so a killed member is evicted quickly and its partitions move on.
TUNING = ConsumerTuning(fetch_max_wait_ms=50, session_timeout_ms=3000, heartbeat_interval_ms=300)


def _settings(event_broker: Any, **overrides: Any) -> Any:
    return fast_settings(
        event_broker,
        consumer=TUNING,
        max_in_flight_per_partition=4,
        dedupe_claim_ttl_s=2.0,
        **overrides,
    )


async def test_repeated_sigkill_loses_and_duplicates_nothing(
    event_broker: Any, tmp_path: Path
) -> None:
    """Three SIGKILLs of the consumer mid-batch, each followed by a restart: one result each."""
    await survive_repeated_sigkill(_settings(event_broker), tmp_path)


async def test_group_members_take_over_a_killed_members_partitions(
    event_broker: Any, tmp_path: Path
) -> None:
    """Three consumers share 6 partitions; after one is killed the others finish its share."""
    settings = _settings(event_broker, partitions=6)
    config = write_config(settings, tmp_path / "config.yaml")
    events = [request(f"item {i}") for i in range(300)]
    procs = [
        await ConsumerProcess(
            config,
            handler="consumer_handlers:SlowEcho",
            options={"delay_ms": "40"},
            log=tmp_path / f"consumer-{n}.log",
        ).start()
        for n in range(3)
    ]
    servers = event_broker.bootstrap_servers
    try:
        await produce(servers, settings.topics.requests.name, events)
        async with TopicReader(servers, settings.topics.results.name) as reader:
            await reader.until(lambda rd: len(rd.records) >= 60, timeout_s=30)
            procs[0].kill()
            await reader.until(
                lambda rd: {r.request_id for r in rd.results()} >= {e.event_id for e in events},
                timeout_s=40,
            )
            await await_markers(servers, settings, reader)
            for proc in procs[1:]:
                proc.terminate()
                assert await proc.wait() == 0
        assert_exactly_once(reader, events)
        logs = [(tmp_path / f"consumer-{n}.log").read_text() for n in (1, 2)]
        assert all("partitions_assigned" in log for log in logs)
    finally:
        for proc in procs:
            await proc.stop()
