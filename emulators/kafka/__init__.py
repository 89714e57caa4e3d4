"""Embedded Kafka broker for development and tests, built on librdkafka's mock cluster.

``EmbeddedKafka`` is the entry point; ``ApiKey`` and ``ErrorCode`` name the protocol numbers
its fault-injection API takes. ``python -m emulators.kafka`` runs one from the shell.
"""

from emulators.kafka.broker import EmbeddedKafka, RequestLog
from emulators.kafka.errors import (
    BrokerNotRunningError,
    FrameError,
    KafkaEmulatorError,
    LibrdkafkaNotFoundError,
    MockClusterError,
)
from emulators.kafka.protocol import ApiKey, ErrorCode

__all__ = [
    "ApiKey",
    "BrokerNotRunningError",
    "EmbeddedKafka",
    "ErrorCode",
    "FrameError",
    "KafkaEmulatorError",
    "LibrdkafkaNotFoundError",
    "MockClusterError",
    "RequestLog",
]
