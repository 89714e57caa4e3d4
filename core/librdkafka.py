"""Locating the librdkafka shared library bundled inside the confluent-kafka wheel.

Why here: two packages reach into that library with ctypes for what no Python API offers (the
embedded broker's mock cluster, the consumers' C murmur2 partitioner), and both must find the
same file the same way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["find_librdkafka"]


def find_librdkafka() -> Path | None:
    """The librdkafka shared library of the installed confluent-kafka, or None without one."""
    spec = importlib.util.find_spec("confluent_kafka")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    # Wheels put it in a sibling `confluent_kafka.libs/` (auditwheel) or inside the package.
    candidates = sorted(package.parent.glob("confluent_kafka.libs/librdkafka*.so*"))
    candidates += sorted(package.glob("**/librdkafka*.so*"))
    return candidates[0] if candidates else None
