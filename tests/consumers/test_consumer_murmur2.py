"""The C partitioner places every key exactly where aiokafka's default partitioner does."""

from __future__ import annotations

import random
import uuid

from aiokafka.partitioner import DefaultPartitioner

from consumers.murmur2 import default_partitioner


def test_the_c_murmur2_partitioner_is_loaded_from_the_bundled_librdkafka() -> None:
    # Falling back to the pure-Python one silently would cost ~10 us per published record.
    assert not isinstance(default_partitioner(), DefaultPartitioner)


def test_keys_land_in_the_same_partition_as_with_aiokafka() -> None:
    rng = random.Random(7)
    ours, theirs = default_partitioner(), DefaultPartitioner()
    keys = [str(uuid.UUID(int=rng.getrandbits(128))).encode() for _ in range(2000)]
    keys += [rng.randbytes(rng.randrange(0, 80)) for _ in range(2000)]
    keys += [b"", b"\x00", b"\x00\x00\x00\x00x", "ünïcode-κλειδί".encode()]
    for count in (1, 2, 3, 8, 12, 100):
        partitions = list(range(count))
        for key in keys:
            assert ours(key, partitions, partitions) == theirs(key, partitions, partitions), key


def test_the_partition_is_taken_from_the_given_partition_list() -> None:
    # aiokafka passes the topic's partition ids; the hash picks an index into that list.
    ours, theirs = default_partitioner(), DefaultPartitioner()
    partitions = [10, 11, 12, 13]
    for i in range(200):
        key = f"k{i}".encode()
        assert ours(key, partitions, partitions) in partitions
        assert ours(key, partitions, partitions) == theirs(key, partitions, partitions)


def test_keyless_records_go_to_an_available_partition() -> None:
    ours = default_partitioner()
    chosen = {ours(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert chosen == {1, 3}
