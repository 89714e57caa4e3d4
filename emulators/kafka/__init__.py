"""Embedded Kafka broker built on librdkafka's mock cluster."""

__all__: list[str] = []
