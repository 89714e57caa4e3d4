"""The runtime survives broker faults injected through the embedded broker's API."""

from __future__ import annotations

from typing import Any

import pytest
from consumer_handlers import SlowEcho
from consumer_support import (
    TopicReader,
    assert_exactly_once,
    await_markers,
    fast_settings,
    produce,
    request,
)

from emulators.kafka import ApiKey, ErrorCode

pytestmark = pytest.mark.slow


async def test_request_errors_are_survived_without_loss(
    kafka_broker: Any, start_service: Any
) -> None:
    """Retriable errors on produce, fetch, commit and heartbeat requests lose no event."""
    settings = fast_settings(kafka_broker)
    await start_service(settings, SlowEcho(2))
    events = [request(f"item {i}") for i in range(200)]
    faults = {
        ApiKey.PRODUCE: [ErrorCode.NOT_LEADER_FOR_PARTITION, ErrorCode.REQUEST_TIMED_OUT] * 2,
        ApiKey.FETCH: [ErrorCode.NOT_LEADER_FOR_PARTITION] * 3,
        ApiKey.OFFSET_COMMIT: [ErrorCode.NOT_COORDINATOR, ErrorCode.REQUEST_TIMED_OUT],
        ApiKey.HEARTBEAT: [ErrorCode.NOT_COORDINATOR],
    }
    try:
        await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, events[:100])
        for api_key, codes in faults.items():
            kafka_broker.push_request_errors(api_key, [int(code) for code in codes])
        await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, events[100:])
        async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
            await r.until(lambda rd: len(rd.records) >= 200, timeout_s=40)
            await await_markers(kafka_broker.bootstrap_servers, settings, r)
    finally:
        for api_key in faults:
            kafka_broker.clear_request_errors(api_key)
    assert_exactly_once(r, events)


async def test_a_ten_second_broker_outage_is_survived_without_loss(
    kafka_broker: Any, start_service: Any
) -> None:
    """Events produced before a 10 s outage all get exactly one result after it ends."""
    settings = fast_settings(kafka_broker, max_in_flight_per_partition=4)
    await start_service(settings, SlowEcho(20))
    events = [request(f"item {i}") for i in range(300)]
    await produce(kafka_broker.bootstrap_servers, settings.topics.requests.name, events)
    async with TopicReader(kafka_broker.bootstrap_servers, settings.topics.results.name) as r:
        await r.until(lambda rd: len(rd.records) >= 30, timeout_s=20)
        await kafka_broker.outage_for(1, 10.0)
        await r.until(lambda rd: len({x.request_id for x in rd.results()}) >= 300, timeout_s=40)
        await await_markers(kafka_broker.bootstrap_servers, settings, r)
    assert_exactly_once(r, events)
