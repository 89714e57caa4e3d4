"""librdkafka-based clients (confluent-kafka) work through the front as well as aiokafka."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from emulators.kafka import EmbeddedKafka


def test_confluent_admin_creates_a_topic_through_flexible_api_versions(
    kafka_broker: EmbeddedKafka,
) -> None:
    """confluent-kafka's AdminClient (flexible ApiVersions) creates a topic with N partitions."""
    topic = f"ck-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=5, replication_factor=1)])[topic].result(10)
    metadata = admin.list_topics(topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == 5


def test_confluent_producer_and_consumer_round_trip(
    kafka_broker: EmbeddedKafka, unique_topic: str
) -> None:
    """A confluent-kafka producer's record is read back by a confluent-kafka group consumer."""
    bootstrap = kafka_broker.bootstrap_servers
    writer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    writer.produce(unique_topic, b"from-librdkafka", key=b"k")
    assert writer.flush(10) == 0
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ck-{uuid.uuid4().hex[:10]}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    try:
        reader.subscribe([unique_topic])
        message = None
        for _ in range(40):
            message = reader.poll(0.5)
            if message is not None and message.error() is None:
                break
    finally:
        reader.close()
    assert message is not None
    assert (message.key(), message.value()) == (b"k", b"from-librdkafka")
