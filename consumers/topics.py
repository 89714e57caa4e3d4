"""Creating the configured topics before anything produces to or consumes from them.

Why a library function: every way of starting the pipeline (a configured cluster, a broker
started for development, `gateway topics ensure`) must create the same topics with the same
partition counts, so consumers and producers never depend on a broker's auto-creation.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from consumers.kafka_errors import kafka_errors
from consumers.settings import KafkaSettings

__all__ = ["ensure_topics"]


async def ensure_topics(settings: KafkaSettings, bootstrap_servers: str) -> list[str]:
    """Create every configured topic that does not exist yet; returns the ones created.

    Idempotent, and safe against another process creating the same topics concurrently.
    Raises a `consumers.errors.BrokerError` when the cluster cannot be reached or refuses.
    """
    created: list[str] = []
    with kafka_errors():
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers, client_id=settings.client_id
        )
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            for topic in settings.topics.all():
                if topic.name in existing:
                    continue
                new = NewTopic(topic.name, topic.partitions, topic.replication)
                try:
                    await admin.create_topics([new])
                except TopicAlreadyExistsError:
                    continue  # created concurrently by another process: what we wanted
                created.append(topic.name)
        finally:
            await admin.close()
    return created
