"""The consumer's garbage-collector settings: short young collections, rare old ones, and
cyclic garbage still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from consumers.gc_tuning import settle_heap


@pytest.fixture
def settled() -> Iterator[dict[int, int]]:
    """settle_heap() applied, collections counted per generation; the interpreter's own
    settings come back afterwards (the collector is process-wide)."""
    before = gc.get_threshold()
    counts: dict[int, int] = {0: 0, 1: 0, 2: 0}

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            counts[info["generation"]] += 1

    settle_heap()
    gc.callbacks.append(count)
    try:
        yield counts
    finally:
        gc.callbacks.remove(count)
        gc.unfreeze()
        gc.set_threshold(*before)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_many_live_objects_meet_only_young_collections(settled: dict[int, int]) -> None:
    # What a consumer with thousands of events in flight does: objects that stay alive for a
    # while pile up. Young collections run (and stay small); none walks the old generations.
    live = []
    for _ in range(200):
        live.append([{"event": i} for i in range(1_000)])
    assert settled[0] >= 100
    assert settled[1] == 0
    assert settled[2] == 0
    del live


def test_cyclic_garbage_is_still_collected(settled: dict[int, int]) -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # refcounting alone never frees a cycle
    # Net allocations past the young threshold.
    churn: list[list[dict[str, int]]] = [[{}] for _ in range(5_000)]
    assert gone() is None
    assert settled[0] >= 1
    del churn


def test_start_up_objects_are_frozen_out_of_every_scan(settled: dict[int, int]) -> None:
    assert gc.get_freeze_count() > 0
