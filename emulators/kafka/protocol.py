"""Kafka protocol numbers the embedded broker's public API speaks in.

Why a module: fault-injection calls take raw ApiKeys and error codes; named constants keep
tests readable (``ApiKey.PRODUCE``, ``ErrorCode.NOT_LEADER_FOR_PARTITION``) without importing a
client library's private tables.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ApiKey", "ErrorCode"]


class ApiKey(IntEnum):
    """Request types of the Kafka protocol (the subset tests inject faults into)."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    INIT_PRODUCER_ID = 22


class ErrorCode(IntEnum):
    """Kafka protocol error codes; ``TRANSPORT`` is librdkafka's "drop the connection"."""

    TRANSPORT = -195
    NONE = 0
    UNKNOWN_TOPIC_OR_PARTITION = 3
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_FOR_PARTITION = 6
    REQUEST_TIMED_OUT = 7
    NETWORK_EXCEPTION = 13
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    NOT_ENOUGH_REPLICAS = 19
    REBALANCE_IN_PROGRESS = 27
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_REQUEST = 42
