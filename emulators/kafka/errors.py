"""Errors raised by the embedded Kafka broker.

Why one root: callers (fixtures, the CLI) catch ``KafkaEmulatorError`` and never need to know
whether the cause was a missing shared library or a refused mock-cluster call.

    KafkaEmulatorError                  retriable = False
    ├── LibrdkafkaNotFoundError         retriable = False
    ├── MockClusterError                retriable = False
    ├── BrokerNotRunningError           retriable = False
    └── FrameError                      retriable = False  (a client sent a malformed frame)
"""

from __future__ import annotations

__all__ = [
    "BrokerNotRunningError",
    "FrameError",
    "KafkaEmulatorError",
    "LibrdkafkaNotFoundError",
    "MockClusterError",
]


class KafkaEmulatorError(Exception):
    """Root of every error raised by ``emulators.kafka``."""

    retriable: bool = False


class LibrdkafkaNotFoundError(KafkaEmulatorError):
    """The librdkafka shared library (bundled with confluent-kafka) could not be loaded."""

    retriable = False


class MockClusterError(KafkaEmulatorError):
    """librdkafka's mock cluster refused a call (bad broker id, duplicate topic, ...)."""

    retriable = False

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class BrokerNotRunningError(KafkaEmulatorError):
    """An operation needed a started broker (call ``start()`` or use ``with`` first)."""

    retriable = False


class FrameError(KafkaEmulatorError):
    """A frame did not have the shape its ApiKey and version promise; the front drops it."""

    retriable = False
