"""Specifications of the offset tracker: commits advance only over contiguous completions."""

from __future__ import annotations

import pytest

from consumers import PartitionOffsets
from consumers.errors import OffsetOrderError


def test_nothing_is_committable_before_a_completion() -> None:
    """Handed-out offsets alone never make anything committable."""
    offsets = PartitionOffsets()
    for n in (5, 6, 7):
        offsets.add(n)
    assert offsets.committable() is None


def test_commit_stops_at_the_first_unfinished_offset() -> None:
    """Finishing 6 and 7 while 5 runs commits nothing; finishing 5 commits through 7."""
    offsets = PartitionOffsets()
    for n in (5, 6, 7, 8):
        offsets.add(n)
    offsets.complete(6)
    offsets.complete(7)
    assert offsets.committable() is None
    offsets.complete(5)
    assert offsets.committable() == 8  # next offset to consume: 8 is still running


def test_all_finished_commits_past_the_last_offset() -> None:
    """When every handed-out offset finished, the commit is the last offset plus one."""
    offsets = PartitionOffsets()
    for n in range(3):
        offsets.add(n)
    for n in (2, 0, 1):
        offsets.complete(n)
    assert offsets.committable() == 3
    assert len(offsets) == 0


def test_in_flight_counts_unfinished_offsets() -> None:
    """in_flight is the number of handed-out offsets not yet completed."""
    offsets = PartitionOffsets()
    for n in range(4):
        offsets.add(n)
    offsets.complete(3)
    offsets.complete(3)  # completing twice is harmless
    assert offsets.in_flight == 3


def test_take_commit_reports_only_advances() -> None:
    """take_commit returns an offset once, until the prefix advances again."""
    offsets = PartitionOffsets()
    offsets.add(0)
    offsets.complete(0)
    assert offsets.take_commit() == 1
    offsets.committed(1)
    assert offsets.take_commit() is None
    offsets.add(1)
    offsets.complete(1)
    assert offsets.take_commit() == 2


def test_offsets_must_be_added_in_order() -> None:
    """Adding an offset lower than one already tracked is a bug and raises."""
    offsets = PartitionOffsets()
    offsets.add(10)
    with pytest.raises(OffsetOrderError, match="added after"):
        offsets.add(9)


def test_completing_an_unknown_offset_raises() -> None:
    """Only handed-out offsets can complete."""
    with pytest.raises(OffsetOrderError):
        PartitionOffsets().complete(1)
