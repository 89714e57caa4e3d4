"""The front's protocol codecs: the few Kafka frames it decodes or writes itself."""

from __future__ import annotations

import struct

import pytest

from emulators.kafka import _wire


def _string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(value)) + value.encode()


def _header(api_key: int, version: int, correlation_id: int, client: str = "c") -> bytes:
    return struct.pack(">hhi", api_key, version, correlation_id) + _string(client)


def _api_versions_v1(ranges: list[tuple[int, int, int]]) -> bytes:
    body = struct.pack(">ih", 7, 0) + struct.pack(">i", len(ranges))
    body += b"".join(struct.pack(">hhh", *r) for r in ranges)
    return body + struct.pack(">i", 0)


def test_api_versions_v1_gains_the_admin_apis() -> None:
    """A non-flexible ApiVersions response is rewritten to advertise CreateTopics/DeleteTopics."""
    frame = _api_versions_v1([(0, 0, 9), (3, 0, 12)])
    rewrite = _wire.ApiVersionsRewrite({19: (0, 3), 20: (0, 3)})
    assert _wire.rewrite_api_versions(frame, 1, rewrite) == _api_versions_v1(
        [(0, 0, 9), (3, 0, 12), (19, 0, 3), (20, 0, 3)]
    )


def test_api_versions_v3_rewrite_keeps_the_flexible_encoding() -> None:
    """A flexible (v3) response keeps compact arrays, per-entry tags and trailing fields."""
    trailer = struct.pack(">i", 0) + b"\x00"
    frame = struct.pack(">ih", 7, 0) + b"\x02" + struct.pack(">hhh", 0, 0, 9) + b"\x00" + trailer
    rewritten = _wire.rewrite_api_versions(frame, 3, _wire.ApiVersionsRewrite({19: (0, 3)}))
    expected = (
        struct.pack(">ih", 7, 0)
        + b"\x03"
        + struct.pack(">hhh", 0, 0, 9)
        + b"\x00"
        + struct.pack(">hhh", 19, 0, 3)
        + b"\x00"
        + trailer
    )
    assert rewritten == expected


def test_api_versions_error_response_is_left_alone() -> None:
    """An UNSUPPORTED_VERSION answer (always v0-shaped) passes through unchanged."""
    frame = struct.pack(">ih", 7, 35) + struct.pack(">i", 0)
    assert _wire.rewrite_api_versions(frame, 3, _wire.ApiVersionsRewrite({19: (0, 3)})) == frame


@pytest.mark.parametrize(("acks", "expected"), [(0, False), (1, True), (-1, True)])
def test_produce_acks_decide_whether_an_answer_is_expected(acks: int, expected: bool) -> None:
    """Only acks=0 produce requests are recognised as getting no response."""
    frame = _header(0, 7, 1) + _string(None) + struct.pack(">hi", acks, 1000)
    assert _wire.produce_expects_response(frame) is expected


def test_flexible_produce_acks_are_found_after_the_tagged_header() -> None:
    """In Produce v9+ acks follow the header's tagged fields and a compact transactional id."""
    frame = _header(0, 9, 1) + b"\x00" + b"\x00" + struct.pack(">hi", 0, 1000)
    assert _wire.produce_expects_response(frame) is False


def test_sync_group_from_the_leader_counts_its_assignments() -> None:
    """A v3 SyncGroup request's group, generation and assignment count are decoded."""
    assignments = struct.pack(">i", 2) + (_string("m") + struct.pack(">i", 0)) * 2
    frame = (
        _header(14, 3, 5)
        + _string("group")
        + struct.pack(">i", 4)
        + _string("m-1")
        + _string(None)
        + assignments
    )
    assert _wire.parse_sync_group(frame) == _wire.SyncGroupRequest("group", 4, "m-1", 2)


def test_create_topics_request_uses_the_replica_assignment_for_partitions() -> None:
    """An explicit replica assignment, not num_partitions (-1), gives the partition count."""
    topic = (
        _string("orders")
        + struct.pack(">ih", -1, -1)
        + struct.pack(">i", 2)
        + (struct.pack(">i", 0) + struct.pack(">ii", 1, 1))
        + (struct.pack(">i", 1) + struct.pack(">ii", 1, 1))
        + struct.pack(">i", 0)
    )
    frame = _header(19, 1, 9) + struct.pack(">i", 1) + topic + struct.pack(">ib", 1000, 0)
    request = _wire.parse_create_topics(frame)
    assert (request.topics, request.validate_only) == ([_wire.TopicSpec("orders", 2, -1)], False)


def test_create_topics_response_v2_carries_throttle_and_messages() -> None:
    """A v2 CreateTopics response has throttle time, then topic, error code and message."""
    frame = _wire.create_topics_response(2, 9, [("orders", 36, "exists")])
    expected = (
        struct.pack(">iii", 9, 0, 1) + _string("orders") + struct.pack(">h", 36) + _string("exists")
    )
    assert frame == expected


def test_truncated_frames_raise_wire_error() -> None:
    """A frame that ends inside a field is reported as a FrameError, not an IndexError."""
    with pytest.raises(_wire.FrameError):
        _wire.parse_sync_group(_header(14, 3, 5) + _string("group"))


@pytest.mark.parametrize(("allow", "expected"), [(1, ["a", "b"]), (0, [])])
def test_metadata_v4_names_topics_to_auto_create_only_when_allowed(
    allow: int, expected: list[str]
) -> None:
    """Metadata v4+ names topics for auto-creation only when allow_auto_topic_creation is set."""
    frame = _header(3, 5, 1) + struct.pack(">i", 2) + _string("a") + _string("b")
    assert _wire.parse_metadata_auto_create(frame + struct.pack(">b", allow)) == expected


def test_metadata_for_all_topics_creates_none() -> None:
    """A Metadata request for every topic (null array) names nothing to create."""
    frame = _header(3, 1, 1) + struct.pack(">i", -1)
    assert _wire.parse_metadata_auto_create(frame) == []
