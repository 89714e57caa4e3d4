"""Specifications of per-key ordering: same key in sequence, different keys in parallel."""

from __future__ import annotations

import asyncio

from consumers.key_order import KeySequencer


async def test_same_key_runs_in_submission_order() -> None:
    """Work for one key starts only after the previous work for that key finished."""
    sequencer = KeySequencer()
    log: list[str] = []

    async def job(name: str, delay: float) -> None:
        log.append(f"start {name}")
        await asyncio.sleep(delay)
        log.append(f"end {name}")

    await asyncio.gather(
        sequencer.run(b"k", lambda: job("a", 0.03)),
        sequencer.run(b"k", lambda: job("b", 0.0)),
    )
    assert log == ["start a", "end a", "start b", "end b"]
    assert len(sequencer) == 0


async def test_different_keys_run_concurrently() -> None:
    """A slow key does not hold back another key."""
    sequencer = KeySequencer()
    gate = asyncio.Event()
    done: list[str] = []

    async def slow() -> None:
        await gate.wait()
        done.append("slow")

    async def fast() -> None:
        done.append("fast")
        gate.set()

    await asyncio.wait_for(
        asyncio.gather(sequencer.run(b"a", slow), sequencer.run(b"b", fast)), timeout=2
    )
    assert done == ["fast", "slow"]


async def test_failure_does_not_block_the_key() -> None:
    """When work for a key raises, the next work for that key still runs."""
    sequencer = KeySequencer()

    async def boom() -> None:
        raise RuntimeError("x")

    async def ok() -> str:
        return "ok"

    results = await asyncio.gather(
        sequencer.run(b"k", boom), sequencer.run(b"k", ok), return_exceptions=True
    )
    assert isinstance(results[0], RuntimeError)
    assert results[1] == "ok"


async def test_none_key_is_unordered() -> None:
    """Work without a key runs at once, even while keyed work is queued."""
    sequencer = KeySequencer()
    gate = asyncio.Event()

    async def wait_gate() -> None:
        await gate.wait()

    async def free() -> str:
        gate.set()
        return "free"

    assert await asyncio.wait_for(
        asyncio.gather(sequencer.run(None, wait_gate), sequencer.run(None, free)), timeout=2
    ) == [None, "free"]
