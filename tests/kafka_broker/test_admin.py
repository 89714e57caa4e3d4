"""Topic administration through the Kafka admin protocol, answered by the broker's front."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from emulators.kafka import EmbeddedKafka, ErrorCode, MockClusterError
from kafka_broker.helpers import producer


@pytest.fixture
async def admin(kafka_broker: EmbeddedKafka) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    await client.start()
    yield client
    await client.close()


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    client = producer(bootstrap)
    await client.start()
    try:
        return set(await client.partitions_for(topic))
    finally:
        await client.stop()


def _name() -> str:
    return f"admin-{uuid.uuid4().hex[:10]}"


async def test_create_topics_creates_the_requested_partitions(
    kafka_broker: EmbeddedKafka, admin: AIOKafkaAdminClient
) -> None:
    """CreateTopics over the admin protocol makes a topic with the requested partition count."""
    topic = _name()
    response = await admin.create_topics([NewTopic(topic, num_partitions=7, replication_factor=1)])
    assert [(t[0], t[1]) for t in response.topic_errors] == [(topic, 0)]
    assert await _partitions(kafka_broker.bootstrap_servers, topic) == set(range(7))


async def test_create_topics_reports_an_existing_topic(
    kafka_broker: EmbeddedKafka, admin: AIOKafkaAdminClient
) -> None:
    """Creating a topic twice answers TOPIC_ALREADY_EXISTS for the second request."""
    topic = _name()
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    response = await admin.create_topics([NewTopic(topic, 2, 1)])
    assert response.topic_errors[0][1] == ErrorCode.TOPIC_ALREADY_EXISTS


async def test_create_topics_rejects_a_replication_factor_above_the_broker_count(
    admin: AIOKafkaAdminClient,
) -> None:
    """A replication factor larger than the cluster answers INVALID_REPLICATION_FACTOR."""
    response = await admin.create_topics([NewTopic(_name(), 1, replication_factor=3)])
    assert response.topic_errors[0][1] == ErrorCode.INVALID_REPLICATION_FACTOR


async def test_delete_topics_answers_and_frees_the_name(
    kafka_broker: EmbeddedKafka, admin: AIOKafkaAdminClient
) -> None:
    """After DeleteTopics succeeds the same name can be created again with a new layout."""
    topic = _name()
    await admin.create_topics([NewTopic(topic, 5, 1)])
    response = await admin.delete_topics([topic])
    assert [tuple(t) for t in response.topic_error_codes] == [(topic, 0)]
    await admin.create_topics([NewTopic(topic, 2, 1)])
    assert await _partitions(kafka_broker.bootstrap_servers, topic) == {0, 1}


async def test_delete_topics_reports_an_unknown_topic(admin: AIOKafkaAdminClient) -> None:
    """Deleting a topic that does not exist answers UNKNOWN_TOPIC_OR_PARTITION."""
    response = await admin.delete_topics([_name()])
    assert response.topic_error_codes[0][1] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_create_topic_api_refuses_a_duplicate(kafka_broker: EmbeddedKafka) -> None:
    """EmbeddedKafka.create_topic raises MockClusterError when the topic already exists."""
    topic = _name()
    kafka_broker.create_topic(topic, 1)
    with pytest.raises(MockClusterError) as raised:
        kafka_broker.create_topic(topic, 1)
    assert raised.value.code == ErrorCode.TOPIC_ALREADY_EXISTS
