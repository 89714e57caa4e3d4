"""pytest fixtures for the embedded Kafka broker (loaded by tests/conftest.py as a plugin).

Why session scope: starting the mock cluster is cheap (~0.2 s) but every test that talks to it
would otherwise pay client bootstrap against a fresh port; isolation comes from unique topic
and group names instead (``unique_topic``, ``unique_group``).

Tests that inject faults (``push_request_errors``, ``broker_down``, ``set_rtt``) must undo them
before returning (``outage()`` does so itself), because the broker is shared.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator

import pytest

from emulators.kafka.broker import EmbeddedKafka

__all__ = ["kafka_broker", "kafka_topic", "unique_group", "unique_topic"]


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[EmbeddedKafka]:
    """A running single-broker embedded Kafka shared by the whole test session."""
    with EmbeddedKafka(brokers=1, default_partitions=4) as kafka:
        yield kafka


@pytest.fixture
def kafka_topic(kafka_broker: EmbeddedKafka) -> Callable[..., str]:
    """Factory: ``kafka_topic(partitions=4, prefix="t")`` creates and returns a fresh topic."""
    counter = itertools.count()

    def create(partitions: int = 4, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}-{next(counter)}"
        kafka_broker.create_topic(name, partitions)
        return name

    return create


@pytest.fixture
def unique_topic(kafka_topic: Callable[..., str]) -> str:
    """A freshly created 4-partition topic nobody else uses."""
    return kafka_topic()


@pytest.fixture
def unique_group() -> str:
    """A consumer-group id nobody else uses."""
    return f"g-{uuid.uuid4().hex[:10]}"
