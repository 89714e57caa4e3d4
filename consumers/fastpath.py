"""Settles a fetched batch of records as a unit: one trip through the event loop per step.

Why: settled one by one, a no-op event paid for about six coroutines and four suspensions
(redelivery look-up, claim, produce acknowledgement, mark published), which cost more CPU than
everything else together. Here one task per batch decodes every record, looks the
possibly-redelivered ones up in one call, starts every handler in a task of its own and yields
once, claims the handlers that finished in that one step in one call, queues their results
and awaits the acknowledgements together, and marks them published in one call.

A handler still running after its first step (a real provider call, a retry backoff, a
rate-limit wait) is NOT awaited here: it finishes the per-event way
(`EventProcessor.settle_outcome`) in a task of its own, so a slow event holds only its own slot
of the in-flight bound, never the rest of its batch. Everything rare (undecodable records,
refused claims, store or broker failures) also leaves the batch for the per-event path, which
keeps the failure semantics of `consumers.processor` in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

from consumers.dedupe import DedupeStoreError
from consumers.errors import EventRejected
from consumers.handlers import Completion
from consumers.invoker import Handled
from consumers.processor import EventProcessor, _parent_traceparent, event_scope
from core.logging import bind_log_scope, reset_log_scope
from schemas import (
    CompletionFailed,
    CompletionSucceeded,
    RequestEvent,
    child_traceparent,
)

__all__ = ["BatchSettler", "Detour", "Settler"]

_log = structlog.get_logger(__name__)

# Hands a record to the per-event path: with the work that finishes it, or None to process
# it from the start (`failures` > 0: a previous attempt failed after possibly publishing).
Detour = Callable[[Any, Awaitable[None] | None, int], None]


class Settler(Protocol):
    """What the runtime settles records through: a batch at a time, or one record on its own.

    One per exactly-once mode: `BatchSettler` (dedupe) and `transactional.TransactionalSettler`.
    """

    async def settle(
        self,
        records: list[tuple[Any, bool]],
        *,
        finished: Callable[[list[Any]], None],
        detour: Detour,
    ) -> None:
        """Settle `records` ((record, maybe_redelivered) pairs of one partition, in offset
        order): `finished` for those whose outcome is settled, `detour` for each left to the
        per-record path; every record gets exactly one of the two."""
        ...

    async def process(
        self, record: Any, *, maybe_redelivered: bool = False, retry: bool = False
    ) -> None:
        """Settle one record; returns when its outcome is settled. What escapes is
        infrastructure failing: the caller backs off and calls again."""
        ...


class BatchSettler:
    def __init__(self, processor: EventProcessor) -> None:
        self._p = processor

    async def process(
        self, record: Any, *, maybe_redelivered: bool = False, retry: bool = False
    ) -> None:
        """The per-record path: `EventProcessor.process`."""
        await self._p.process(record, maybe_redelivered=maybe_redelivered, retry=retry)

    async def settle(
        self,
        records: list[tuple[Any, bool]],
        *,
        finished: Callable[[list[Any]], None],
        detour: Detour,
    ) -> None:
        """Settle `records` ((record, maybe_redelivered) pairs, in offset order).

        Calls `finished` with the records whose outcome is published, and `detour` for each
        record left to the per-event path; every record gets exactly one of the two.
        """
        p = self._p
        decoded: list[tuple[Any, RequestEvent, str]] = []
        redelivered: list[int] = []
        for record, maybe in records:
            try:
                event = p._decode(record)
            except EventRejected:
                detour(record, None, 0)  # dead-lettered by the per-event path
                continue
            if maybe:
                redelivered.append(len(decoded))
            decoded.append((record, event, child_traceparent(_parent_traceparent(record.headers))))
        if redelivered:
            decoded = await self._drop_published(decoded, redelivered, finished)
        # One task per handler: handlers may rely on running in a task of their own (timeouts,
        # cancel scopes). They all take their first step during the one yield below; those
        # that finished there are settled here, the rest finish the per-event way.
        started = time.monotonic()
        tasks = [self._start(record, event, traceparent) for record, event, traceparent in decoded]
        try:
            await asyncio.sleep(0)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        ready: list[tuple[Any, RequestEvent, str, CompletionSucceeded | CompletionFailed]] = []
        for (record, event, traceparent), task in zip(decoded, tasks, strict=True):
            result = self._handled(record, event, traceparent, task, started=started, detour=detour)
            if result is not None:
                ready.append((record, event, traceparent, result))
        if ready:
            await self._publish(ready, finished, detour)

    async def _drop_published(
        self,
        decoded: list[tuple[Any, RequestEvent, str]],
        redelivered: list[int],
        finished: Callable[[list[Any]], None],
    ) -> list[tuple[Any, RequestEvent, str]]:
        """The redelivery check of `EventProcessor`, one store call for the whole batch."""
        p = self._p
        ids = [decoded[i][1].event_id for i in redelivered]
        try:
            known = await p._dedupe.is_published_many(ids)  # type: ignore[attr-defined]
        except DedupeStoreError as exc:
            _log.warning("consumer.dedupe_unavailable", error=type(exc).__name__, detail=str(exc))
            known = [False] * len(ids)
        skip: set[int] = set()
        for i, published in zip(redelivered, known, strict=True):
            record, event, _ = decoded[i]
            if published or await p._on_results_topic(event.event_id, record, refresh=False):
                skip.add(i)
        if not skip:
            return decoded
        p._metrics.duplicates_skipped.inc(len(skip))
        _log.info("consumer.duplicates_skipped", count=len(skip))
        finished([decoded[i][0] for i in sorted(skip)])
        return [item for i, item in enumerate(decoded) if i not in skip]

    def _start(self, record: Any, event: RequestEvent, traceparent: str) -> asyncio.Task[Handled]:
        token = bind_log_scope(event_scope(record, event))
        try:
            # The task copies the context bound above.
            return asyncio.create_task(self._p.invoker.handle(event, traceparent))
        finally:
            reset_log_scope(token)

    def _handled(
        self,
        record: Any,
        event: RequestEvent,
        traceparent: str,
        task: asyncio.Task[Handled],
        *,
        started: float,
        detour: Detour,
    ) -> CompletionSucceeded | CompletionFailed | None:
        """The result of a handler that finished in its first step, or None when detoured."""
        p = self._p
        if not task.done():
            detour(record, self._finish(record, event, traceparent, task, started=started), 0)
            return None
        if task.cancelled() or task.exception() is not None:
            detour(record, None, 1)
            return None
        handled = task.result()
        if not isinstance(handled[0], Completion):
            # A failed event also takes a dead letter: rare, left to the per-event path.
            detour(record, p.settle_outcome(record, event, traceparent, handled, started), 0)
            return None
        return p.result_for(event, handled, started)

    async def _finish(
        self,
        record: Any,
        event: RequestEvent,
        traceparent: str,
        task: asyncio.Task[Handled],
        *,
        started: float,
    ) -> None:
        try:
            # wait() keeps `task` alive if we are cancelled; then it is cancelled explicitly.
            await asyncio.wait([task])
        except BaseException:
            task.cancel()
            raise
        handled = task.result()
        await self._p.settle_outcome(record, event, traceparent, handled, started)

    async def _publish(
        self,
        ready: list[tuple[Any, RequestEvent, str, CompletionSucceeded | CompletionFailed]],
        finished: Callable[[list[Any]], None],
        detour: Detour,
    ) -> None:
        p = self._p
        store: Any = p._dedupe
        try:
            claimed = await store.claim_many([event.event_id for _, event, _, _ in ready])
        except DedupeStoreError as exc:
            _log.warning("consumer.dedupe_unavailable", error=type(exc).__name__, detail=str(exc))
            claimed = [False] * len(ready)
        mine: list[tuple[Any, RequestEvent, str, CompletionSucceeded | CompletionFailed]] = []
        for item, ok in zip(ready, claimed, strict=True):
            if ok:
                mine.append(item)
            else:
                # Refused (published, or held elsewhere) or unknown: the per-event loop decides.
                _, event, traceparent, result = item
                detour(item[0], p.publish_result(event, result, traceparent), 0)
        if mine:
            await self._send(mine, finished, detour)

    async def _send(
        self,
        mine: list[tuple[Any, RequestEvent, str, CompletionSucceeded | CompletionFailed]],
        finished: Callable[[list[Any]], None],
        detour: Detour,
    ) -> None:
        """Queue every claimed result, await the acknowledgements together, mark them."""
        p = self._p
        store: Any = p._dedupe
        topic = p._settings.topics.results.name
        try:
            acks = await p._publisher.send_many(
                topic,
                [(result, event.event_id, event.subject, tp) for _, event, tp, result in mine],
            )
            # Records of one partition share their batch's future: await each once.
            futures = {id(a): a for a in acks if not isinstance(a, BaseException)}
            settled = await asyncio.gather(*futures.values(), return_exceptions=True)
        except BaseException:
            # Cancelled (revocation deadline): let a redelivery claim again.
            for _, event, _, _ in mine:
                with contextlib.suppress(DedupeStoreError):
                    await asyncio.shield(store.release(event.event_id))
            raise
        by_future = dict(zip(futures, settled, strict=True))
        done: list[tuple[Any, RequestEvent, str, CompletionSucceeded | CompletionFailed]] = []
        for item, ack in zip(mine, acks, strict=True):
            outcome = ack if isinstance(ack, BaseException) else by_future[id(ack)]
            if isinstance(outcome, BaseException):
                with contextlib.suppress(DedupeStoreError):
                    await store.release(item[1].event_id)
                _log.warning("consumer.publish_failed", error=type(outcome).__name__)
                detour(item[0], None, 1)
            else:
                done.append(item)
        if not done:
            return
        for _, event, _, result in done:
            p.count_published(event.task, result)
        # The results are acknowledged, so the offsets may be committed before the markers are
        # written: a redelivery can only follow a crash before the commit, and the results probe
        # finds an acknowledged result without a marker. Releasing the in-flight slots one
        # store round trip earlier lets the partition's next records start sooner.
        finished([item[0] for item in done])
        try:
            await store.mark_published_many([event.event_id for _, event, _, _ in done])
        except DedupeStoreError as exc:
            _log.warning("consumer.mark_published_failed", error=type(exc).__name__)
