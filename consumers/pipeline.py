"""The consume pipeline: one shape for a fetched batch of one or more records, of one or more
partitions.

Why one pipeline: every record takes the same steps whether it arrives in a batch of 500 or on
its own (a record waiting for its key, a retry), as FastStream's batch subscriber differs from
its default one only in fetching. A batch is simply cheaper: each step that asks a store or the
broker asks once for the whole batch. The steps, in order:

1. decode: the request event a record holds; an undecodable, oversized or unknown record gets
   a verdict at once (its dead letter) and skips to step 5;
2. screen (`Durability.screen`): records whose result may already be durable (possibly
   redelivered, or retried after a failed step) are looked up; found ones settle as Skipped;
3. handle: every handler starts in a task of its own (`HandlerInvoker.handle`: rate limits,
   attempts, retries); the batch yields once, and those that finished in that one step go on
   together, while each one still running is detached (`Hooks.detach`): its task goes on to
   steps 4 and 5 by itself, so a slow event never holds its batch;
4. decide: the verdict, set once per record: its result (`results.result_for`) and, for a
   failure, its dead letter;
5. make durable (`Durability.make_durable`), which alone differs between the exactly-once
   modes: `dedupe_mode` claims, publishes and acknowledges, then settles (offsets may commit),
   then writes the published markers; `transactions_mode` stages the messages for the
   partition's transaction that also commits their offsets, and settles.
   Step 5 runs as a group commit (`consumers._group_commit`): whatever was decided, on any
   partition, while the previous rounds ran goes through it together. Handlers that end one
   by one (slow ones, at thousands a second) would otherwise each pay the store's and the
   broker's round trips alone, and hundreds of rounds would queue on one partition.
A step that fails (the broker, the store) hands the record back (`Hooks.failed`) with its
verdict kept: it runs again from step 2 after a backoff, and its handler is not called again.
Every record's outcome is set exactly once (`records.Delivery.settle`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec
import structlog

from consumers._group_commit import GroupCommit
from consumers.deadletters import classify_decode_error, dead_letter_for
from consumers.errors import ConsumerError, EventRejected, NoHandler
from consumers.invoker import Handled, HandlerInvoker
from consumers.metrics import ConsumerMetrics
from consumers.records import Abandoned, ConsumedRecord, Delivery, Hooks, Message, Verdict
from consumers.results import result_for
from consumers.settings import KafkaSettings
from core.logging import bind_log_scope, reset_log_scope
from schemas import ErrorInfo, EventCodec, Request, child_traceparent

__all__ = ["Durability", "Pipeline", "decode_record", "event_scope"]

_log = structlog.get_logger(__name__)


class Durability(Protocol):
    """The exactly-once mode's part of the pipeline: steps 2 and 5 (see the module docstring).

    Both settle (`Delivery.settle`) every delivery they finish and report them together through
    `hooks.settled`; what they cannot finish now they return, for the pipeline to hand back.
    """

    def invoker_for(self, record: ConsumedRecord) -> HandlerInvoker | None:
        """Who runs the handlers of `record`'s partition; None when it is no longer ours."""
        ...

    async def screen(self, deliveries: list[Delivery], hooks: Hooks) -> list[Delivery]:
        """Settle those whose outcome is already durable (or no longer ours); the rest."""
        ...

    async def make_durable(
        self, deliveries: list[Delivery], hooks: Hooks
    ) -> list[tuple[Delivery, Exception]]:
        """Make each decided delivery's verdict durable and settle it; returns, with its error,
        each one whose step failed and must run again."""
        ...


def traceparent_of(record: ConsumedRecord) -> str:
    """A child of the request's trace (a new trace when the record carries none, or garbage)."""
    parent: str | None = None
    for key, raw in record.headers or ():
        if key == "traceparent" and raw is not None:
            try:
                parent = raw.decode()
            except UnicodeDecodeError:
                parent = None
            break
    return child_traceparent(parent)


def event_scope(record: ConsumedRecord, event: Request | None) -> dict[str, Any]:
    """The fields every log line about this record (and its event) carries."""
    scope: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }
    if event is not None:
        scope["event_id"] = event.event_id
        scope["task"] = event.task
    return scope


def decode_record(record: ConsumedRecord, codec: EventCodec, max_event_bytes: int) -> Request:
    """The request event a consumed record holds; raises EventRejected (dead-letter it)."""
    value = record.value
    if value is None:
        raise EventRejected("malformed", "record has no value")
    if len(value) > max_event_bytes:
        raise EventRejected("oversized", f"{len(value)} bytes > max_event_bytes {max_event_bytes}")
    try:
        return codec.decode_request(value)
    except msgspec.DecodeError as exc:
        raise EventRejected(classify_decode_error(exc), str(exc)[:500]) from exc


class _Owners:
    """The hooks of deliveries of several partitions (a fetch's batch, a group-commit round):
    each report goes to its delivery's own partition's hooks."""

    def __init__(self, entries: Sequence[tuple[Sequence[Delivery], Hooks]]) -> None:
        # Deliveries hash by identity. Nested owners are flattened, so a round reports once
        # per partition however its deliveries were batched.
        self._of: dict[Delivery, Hooks] = {}
        for deliveries, hooks in entries:
            for delivery in deliveries:
                self._of[delivery] = hooks.of(delivery) if isinstance(hooks, _Owners) else hooks

    def of(self, delivery: Delivery) -> Hooks:
        """The hooks of `delivery`'s partition."""
        return self._of[delivery]

    def settled(self, deliveries: Sequence[Delivery]) -> None:
        # One report per partition (the runtime's hooks of one partition are equal).
        by_owner: dict[Hooks, list[Delivery]] = {}
        for delivery in deliveries:
            by_owner.setdefault(self._of[delivery], []).append(delivery)
        for hooks, settled in by_owner.items():
            hooks.settled(settled)

    def detach(self, delivery: Delivery, task: asyncio.Task[Any]) -> None:
        self._of[delivery].detach(delivery, task)

    def failed(self, delivery: Delivery, error: Exception) -> None:
        self._of[delivery].failed(delivery, error)


class Pipeline:
    """Runs deliveries through the steps; `run` is the one entry, for any batch size."""

    def __init__(
        self,
        *,
        settings: KafkaSettings,
        codec: EventCodec,
        metrics: ConsumerMetrics,
        durability: Durability,
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._metrics = metrics
        self._durability = durability
        # Keyed by the partition's hooks: the runtime gives one partition's deliveries equal
        # hooks (`consumers._dispatch`).
        self._group_commit: GroupCommit[Hooks] = GroupCommit(
            self._commit_round, on_round=metrics.group_commit_size.observe
        )

    async def run_many(self, entries: Sequence[tuple[list[Delivery], Hooks]]) -> None:
        """`run` for several partitions' deliveries at once (each entry one partition's, in
        offset order, with its hooks): one fetch's records take each step together.

        Why: at a few thousand events a second a fetch brings about one record per
        partition, and a batch per partition paid its task, its screen and its yield per
        record.
        """
        if len(entries) == 1:
            await self.run(*entries[0])
        elif entries:
            await self.run([d for deliveries, _ in entries for d in deliveries], _Owners(entries))

    async def run(self, deliveries: list[Delivery], hooks: Hooks) -> None:
        """Take `deliveries` (one partition's, in offset order, or several partitions' with
        hooks that tell them apart) as far as they go now: each is settled, detached (its
        handler still runs) or handed back (a step failed)."""
        for delivery in deliveries:
            if delivery.verdict is None and delivery.event is None:
                self._decode(delivery)
        try:
            rest = await self._durability.screen(deliveries, hooks)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for delivery in deliveries:
                if delivery.outcome is None:
                    hooks.failed(delivery, exc)
            return
        ready = [d for d in rest if d.verdict is not None]
        waiting = [d for d in rest if d.verdict is None]
        if waiting:
            ready += await self._handle(waiting, hooks)
        if ready:
            await self._durable(ready, hooks)

    def _decode(self, delivery: Delivery) -> None:
        record = delivery.record
        delivery.traceparent = traceparent_of(record)
        try:
            delivery.event = decode_record(record, self._codec, self._settings.max_event_bytes)
        except EventRejected as exc:
            token = bind_log_scope(event_scope(record, None))
            try:
                info = ErrorInfo(type=type(exc).__name__, message=str(exc)[:500], retriable=False)
                letter = self._letter(delivery, exc.reason, [info], attempts=0)
            finally:
                reset_log_scope(token)
            delivery.decide(Verdict(None, False, letter, reason=exc.reason))

    async def _handle(self, deliveries: list[Delivery], hooks: Hooks) -> list[Delivery]:
        """Start every handler, yield once; the deliveries decided in that step."""
        started = time.monotonic()
        # A detached task reports to its own partition's hooks: its durable step must be
        # cancellable with its partition alone (`consumers._group_commit`).
        owners = hooks if isinstance(hooks, _Owners) else None
        tasks = [
            self._start(d, started, owners.of(d) if owners is not None else hooks)
            for d in deliveries
        ]
        try:
            # Handlers may rely on running in a task of their own (timeouts, cancel scopes).
            # They all take their first step during this one yield.
            await asyncio.sleep(0)
        except BaseException:
            for task in tasks:
                if task is not None:
                    task.cancel()
            raise
        ready: list[Delivery] = []
        settled: list[Delivery] = []
        for delivery, task in zip(deliveries, tasks, strict=True):
            if task is None:
                settled.append(delivery)  # its partition is no longer ours
            elif not task.done():
                # Read by the task when its handler returns: it goes on by itself. Nothing
                # runs between this check and the flag, so the task cannot miss it.
                delivery.detached = True
                hooks.detach(delivery, task)
            elif self._decided(delivery, task, started, hooks):
                ready.append(delivery)
        if settled:
            hooks.settled(settled)
        return ready

    def _start(
        self, delivery: Delivery, started: float, hooks: Hooks
    ) -> asyncio.Task[Handled | None] | None:
        invoker = self._durability.invoker_for(delivery.record)
        if invoker is None:
            delivery.settle(Abandoned())
            return None
        assert delivery.event is not None  # decided deliveries never reach here
        delivery.kind = invoker.kind_of(delivery.event)
        token = bind_log_scope(event_scope(delivery.record, delivery.event))
        try:
            # The task copies the context bound above.
            return asyncio.create_task(self._handled(invoker, delivery, started, hooks))
        finally:
            reset_log_scope(token)

    async def _handled(
        self, invoker: HandlerInvoker, delivery: Delivery, started: float, hooks: Hooks
    ) -> Handled | None:
        """The handler's task: the handling, and, once the batch detached it, the rest.

        Why one task for both: a second task per slow event (to await the handler and finish
        it) was a third of the runtime's tasks at thousands of slow events a second. A task
        that ends within the batch's step returns what it handled, for the batch to decide.
        """
        assert delivery.event is not None  # started only for decoded events
        try:
            handled = await invoker.handle(delivery.event, delivery.traceparent)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not delivery.detached or (current is not None and current.cancelling()):
                raise  # the batch's to report, or the runtime cancelled us (abandoned)
            # The handler cancelled itself: hand the record back, as a failed step.
            hooks.failed(delivery, ConsumerError("the handler's task was cancelled"))
            return None
        except Exception as exc:
            if not delivery.detached:
                raise
            # The invoker returns every handler failure; what escapes it is a bug of ours.
            hooks.failed(delivery, exc)
            return None
        if not delivery.detached:
            return handled
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise asyncio.CancelledError  # cancelled while the handler ignored its cancel
        if self._decide(delivery, handled, started, hooks):
            await self._durable([delivery], hooks)
        return None

    def _decided(
        self, delivery: Delivery, task: asyncio.Task[Handled | None], started: float, hooks: Hooks
    ) -> bool:
        """Set the verdict from a finished handler task; False when it did not finish cleanly."""
        if task.cancelled():
            hooks.failed(delivery, ConsumerError("the handler's task was cancelled"))
            return False
        error = task.exception()
        if error is not None:
            # The invoker returns every handler failure; what escapes it is a bug of ours.
            hooks.failed(delivery, error if isinstance(error, Exception) else Exception(error))
            return False
        handled = task.result()
        assert handled is not None  # a task that was not detached returns what it handled
        return self._decide(delivery, handled, started, hooks)

    def _decide(self, delivery: Delivery, handled: Handled, started: float, hooks: Hooks) -> bool:
        """Set the verdict from what the handler returned; False when it cannot be made."""
        event, kind = delivery.event, delivery.kind
        assert event is not None and kind is not None  # both set when the task was started
        try:
            result = result_for(kind, event, handled, started)
        except Exception as exc:
            # A bug of ours (or a handler answering what its kind does not allow): the record
            # is handed back, loudly, and the rest of its batch goes on.
            hooks.failed(delivery, exc)
            return False
        outcome, attempts, errors = handled
        messages: tuple[Message, ...] = ()
        reason: str | None = None
        failed = isinstance(outcome, BaseException)
        if failed:
            reason = "no_handler" if isinstance(outcome, NoHandler) else "handler_failed"
            token = bind_log_scope(event_scope(delivery.record, event))
            try:
                messages = self._letter(delivery, reason, errors, attempts=attempts)
            finally:
                reset_log_scope(token)
        key = event.event_id.encode()
        results = self._settings.topics.results.name
        message = Message(results, result, key, event.subject, delivery.traceparent)
        delivery.decide(Verdict(result, not failed, (*messages, message), reason=reason))
        return True

    def _letter(
        self, delivery: Delivery, reason: str, errors: list[ErrorInfo], *, attempts: int
    ) -> tuple[Message, ...]:
        """The dead-letter message of a record (none when dead letters are off)."""
        self._metrics.dead_lettered.labels(reason).inc()
        _log.warning("consumer.dead_lettered", reason=reason)
        if not self._settings.dead_letters_enabled:
            return ()
        letter, key = dead_letter_for(delivery.record, reason, errors, attempts=attempts)
        topic = self._settings.topics.dead_letters.name
        return (Message(topic, letter, key, None, delivery.traceparent),)

    async def _durable(self, deliveries: list[Delivery], hooks: Hooks) -> None:
        """Step 5 for `deliveries`, in the next group-commit round."""
        await self._group_commit.join(deliveries, hooks)

    async def _commit_round(self, entries: list[tuple[list[Delivery], Hooks]]) -> None:
        if len(entries) == 1:
            deliveries, hooks = entries[0]
            await self._make_durable(deliveries, hooks)
            return
        owners = _Owners(entries)
        await self._make_durable([d for deliveries, _ in entries for d in deliveries], owners)

    async def _make_durable(self, deliveries: Sequence[Delivery], hooks: Hooks) -> None:
        try:
            failures = await self._durability.make_durable(list(deliveries), hooks)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = [(d, exc) for d in deliveries if d.outcome is None]
        for delivery, error in failures:
            hooks.failed(delivery, error)
