"""The few Kafka wire formats the front decodes or writes; pure functions, no I/O.

Why it exists: the front forwards almost every frame byte-for-byte and only looks inside
ApiVersions responses (to advertise the admin APIs it answers itself), CreateTopics and
DeleteTopics requests (answered locally), SyncGroup requests (to spot the group leader) and
Produce requests (``acks=0`` gets no response). Keeping these codecs free of sockets makes
them easy to reason about and to test.

Frames here exclude the 4-byte length prefix. Only non-flexible versions of CreateTopics,
DeleteTopics and SyncGroup are decoded: the broker advertises no higher ones.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from emulators.kafka.errors import FrameError

__all__ = [
    "CREATE_TOPICS_MAX_VERSION",
    "DELETE_TOPICS_MAX_VERSION",
    "METADATA_MAX_VERSION",
    "SYNC_GROUP_MAX_VERSION",
    "ApiVersionsRewrite",
    "CreateTopicsRequest",
    "FrameError",
    "SyncGroupRequest",
    "TopicSpec",
    "create_topics_response",
    "delete_topics_response",
    "parse_create_topics",
    "parse_delete_topics",
    "parse_metadata_auto_create",
    "parse_sync_group",
    "produce_expects_response",
    "request_header",
    "rewrite_api_versions",
]

API_PRODUCE, API_METADATA, API_SYNC_GROUP, API_API_VERSIONS = 0, 3, 14, 18
API_CREATE_TOPICS, API_DELETE_TOPICS = 19, 20
CREATE_TOPICS_MAX_VERSION = 3
DELETE_TOPICS_MAX_VERSION = 3
SYNC_GROUP_MAX_VERSION = 3
METADATA_MAX_VERSION = 8
_PRODUCE_FIRST_FLEXIBLE = 9
_API_VERSIONS_FIRST_FLEXIBLE = 3


class _Reader:
    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.pos = offset

    def _take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise FrameError("frame ends early")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return int(value)

    def int8(self) -> int:
        return self._take(">b")

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            byte = self._take(">B")
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def string(self) -> str | None:
        size = self.int16()
        return None if size < 0 else self.raw(size).decode()

    def compact_string(self) -> str | None:
        size = self.uvarint() - 1
        return None if size < 0 else self.raw(size).decode()

    def raw(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise FrameError("frame ends early")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.raw(self.uvarint())


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def request_header(frame: bytes) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) of a request frame."""
    if len(frame) < 8:
        raise FrameError("request shorter than its header")
    api_key, version, correlation_id = struct.unpack_from(">hhi", frame, 0)
    return int(api_key), int(version), int(correlation_id)


def _body(frame: bytes, flexible: bool) -> _Reader:
    """Reader positioned after a v1 (or, when flexible, v2) request header."""
    reader = _Reader(frame, 8)
    reader.string()  # client_id stays a classic nullable string even in header v2
    if flexible:
        reader.skip_tagged_fields()
    return reader


def produce_expects_response(frame: bytes) -> bool:
    """False for ``acks=0`` produce requests, which a broker never answers."""
    _, version, _ = request_header(frame)
    flexible = version >= _PRODUCE_FIRST_FLEXIBLE
    reader = _body(frame, flexible)
    if version >= 3:
        reader.compact_string() if flexible else reader.string()  # transactional_id
    return reader.int16() != 0


def parse_metadata_auto_create(frame: bytes) -> list[str]:
    """Topics a Metadata request (v0-v8) lets the broker auto-create; [] when it forbids it."""
    _, version, _ = request_header(frame)
    if version > METADATA_MAX_VERSION:
        raise FrameError(f"Metadata v{version} is not decoded")
    reader = _body(frame, flexible=False)
    count = reader.int32()  # -1 asks for every topic and creates none
    names = [reader.string() or "" for _ in range(max(count, 0))]
    allowed = version < 4 or reader.int8() != 0
    return [name for name in names if name] if allowed else []


@dataclass(frozen=True, slots=True)
class SyncGroupRequest:
    """The routing facts of a SyncGroup request; ``assignments`` > 0 only from the leader."""

    group_id: str
    generation_id: int
    member_id: str
    assignments: int


def parse_sync_group(frame: bytes) -> SyncGroupRequest:
    _, version, _ = request_header(frame)
    if version > SYNC_GROUP_MAX_VERSION:
        raise FrameError(f"SyncGroup v{version} is not decoded")
    reader = _body(frame, flexible=False)
    group_id = reader.string() or ""
    generation_id = reader.int32()
    member_id = reader.string() or ""
    if version >= 3:
        reader.string()  # group_instance_id
    return SyncGroupRequest(group_id, generation_id, member_id, max(reader.int32(), 0))


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic of a CreateTopics request; -1 means "broker default"."""

    name: str
    partitions: int
    replication: int


@dataclass(frozen=True, slots=True)
class CreateTopicsRequest:
    version: int
    correlation_id: int
    topics: list[TopicSpec]
    validate_only: bool


def parse_create_topics(frame: bytes) -> CreateTopicsRequest:
    _, version, correlation_id = request_header(frame)
    reader = _body(frame, flexible=False)
    topics: list[TopicSpec] = []
    for _ in range(reader.int32()):
        name = reader.string() or ""
        partitions = reader.int32()
        replication = reader.int16()
        assigned = reader.int32()
        for _ in range(max(assigned, 0)):
            reader.int32()
            for _ in range(max(reader.int32(), 0)):
                reader.int32()
        for _ in range(max(reader.int32(), 0)):
            reader.string()
            reader.string()
        if assigned > 0:
            partitions = assigned
        topics.append(TopicSpec(name, partitions, replication))
    reader.int32()  # timeout_ms
    validate_only = version >= 1 and reader.int8() != 0
    return CreateTopicsRequest(version, correlation_id, topics, validate_only)


def create_topics_response(
    version: int, correlation_id: int, results: list[tuple[str, int, str | None]]
) -> bytes:
    """Response frame for (topic, error_code, error_message) results."""
    out = bytearray(struct.pack(">i", correlation_id))
    if version >= 2:
        out += struct.pack(">i", 0)  # throttle_time_ms
    out += struct.pack(">i", len(results))
    for topic, code, message in results:
        out += _string(topic) + struct.pack(">h", code)
        if version >= 1:
            out += _string(message)
    return bytes(out)


def parse_delete_topics(frame: bytes) -> tuple[int, int, list[str]]:
    """(version, correlation_id, topic names) of a DeleteTopics request."""
    _, version, correlation_id = request_header(frame)
    reader = _body(frame, flexible=False)
    names = [reader.string() or "" for _ in range(max(reader.int32(), 0))]
    return version, correlation_id, names


def delete_topics_response(
    version: int, correlation_id: int, results: list[tuple[str, int]]
) -> bytes:
    out = bytearray(struct.pack(">i", correlation_id))
    if version >= 1:
        out += struct.pack(">i", 0)  # throttle_time_ms
    out += struct.pack(">i", len(results))
    for topic, code in results:
        out += _string(topic) + struct.pack(">h", code)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class ApiVersionsRewrite:
    """Version ranges to advertise instead of (or in addition to) the mock's own."""

    ranges: dict[int, tuple[int, int]]


def rewrite_api_versions(frame: bytes, version: int, rewrite: ApiVersionsRewrite) -> bytes:
    """ApiVersions response frame with ``rewrite.ranges`` merged into its api_keys list.

    Error responses (e.g. UNSUPPORTED_VERSION, always encoded as v0) are returned unchanged.
    """
    reader = _Reader(frame)
    correlation_id = reader.int32()
    if reader.int16() != 0:
        return frame
    flexible = version >= _API_VERSIONS_FIRST_FLEXIBLE
    count = reader.uvarint() - 1 if flexible else reader.int32()
    ranges: dict[int, tuple[int, int]] = {}
    for _ in range(count):
        key, low, high = reader.int16(), reader.int16(), reader.int16()
        if flexible:
            reader.skip_tagged_fields()
        ranges[key] = (low, high)
    ranges.update(rewrite.ranges)
    out = bytearray(struct.pack(">ih", correlation_id, 0))
    out += _uvarint(len(ranges) + 1) if flexible else struct.pack(">i", len(ranges))
    for key in sorted(ranges):
        low, high = ranges[key]
        out += struct.pack(">hhh", key, low, high)
        if flexible:
            out += b"\x00"
    out += frame[reader.pos :]  # throttle time and trailing tagged fields, untouched
    return bytes(out)
