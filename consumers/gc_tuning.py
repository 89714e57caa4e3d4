"""Garbage-collector settings for a long-running consumer process.

Why: a consumer holding thousands of events in flight keeps hundreds of thousands of live
objects (each event's tasks, coroutines, futures, timers and records) that refcounting frees
once the event settles; the cyclic collector finds almost nothing among them (hundreds of
objects a run), yet every collection walks the live objects of the generations it collects.
Measured in `bench/kafka_bench.py`'s (c) (10,000 events in flight, `--split-latency`):
- CPython's default thresholds (700, 10, 10) promote the in-flight events to the old
  generation, whose full collections (43 in 20 s, up to 342 ms each) stopped the event loop;
- large young thresholds (50,000) let a young collection find ~140,000 live objects, and it
  stopped the loop for up to 225-394 ms, the whole p99 of the latency the runtime adds;
- small young collections (1,000) stay under ~10 ms each, and the middle and full ones,
  which walk every in-flight event, are spaced minutes apart at that load.
Freezing what start-up allocated (modules, clients) takes it out of every later scan.
Cycles that outlive a young collection wait for a middle collection (every 20,000 young ones,
minutes at thousands of events a second, longer when idle), so memory stays bounded.
"""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]

# Young collections every 1,000 net allocations; a middle collection after 20,000 young ones
# and a full collection after 10 middle ones (and CPython's own "25% new long-lived" rule).
_THRESHOLDS = (1_000, 20_000, 10)


def settle_heap() -> None:
    """Call once, after start-up: freeze start-up objects, keep young collections short and
    space out the collections that walk every in-flight event."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_THRESHOLDS)
