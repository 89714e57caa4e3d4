"""Key -> partition, as every Kafka client's default partitioner does it, in C.

Why: results are keyed by request id, and the partition of a key must be the one the Java
client, librdkafka's "murmur2" partitioner and aiokafka's `DefaultPartitioner` all agree on
(`consumers.results_lookup` looks a key up in that partition). aiokafka computes murmur2 in
pure Python, ~12 us per record: about a fifth of the runtime's whole per-event cost.
librdkafka, bundled in the confluent-kafka wheel this project already depends on, exports the
same Java-compatible function; through ctypes it costs ~1.5 us. Without the library,
aiokafka's is used.
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Callable, Sequence

import structlog
from aiokafka.partitioner import DefaultPartitioner

from core.librdkafka import find_librdkafka

__all__ = ["Partitioner", "default_partitioner"]

_log = structlog.get_logger(__name__)

# aiokafka's partitioner interface: (key bytes or None, all partitions, available partitions).
Partitioner = Callable[[bytes | None, Sequence[int], Sequence[int]], int]

_chosen: Partitioner | None = None


def _load_murmur2() -> Callable[..., int] | None:
    path = find_librdkafka()
    if path is None:
        return None
    try:
        function = ctypes.CDLL(str(path)).rd_kafka_msg_partitioner_murmur2
    except (OSError, AttributeError):
        return None
    # int32_t (const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
    #          int32_t partition_cnt, void *rkt_opaque, void *msg_opaque); the murmur2
    # partitioner reads only key, keylen and partition_cnt.
    function.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    function.restype = ctypes.c_int32
    return function


def _c_partitioner(murmur2: Callable[..., int]) -> Partitioner:
    def partition(
        key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:
            # As aiokafka: keyless records spread over the partitions that have a leader.
            return random.choice(available or all_partitions)
        return all_partitions[murmur2(None, key, len(key), len(all_partitions), None, None)]

    return partition


def default_partitioner() -> Partitioner:
    """The fastest partitioner available that places keys exactly as aiokafka's default."""
    global _chosen  # noqa: PLW0603 - the library is loaded once per process
    if _chosen is None:
        murmur2 = _load_murmur2()
        if murmur2 is None:
            _log.info("partitioner.pure_python", reason="librdkafka not found")
            _chosen = DefaultPartitioner()
        else:
            _chosen = _c_partitioner(murmur2)
    return _chosen
