"""The life of ONE request record: decode, handle with retries, publish its result once.

Why a separate module: this is the consume loop's "shape" (parse, decode, handle, publish,
settle) with every failure decided in one place; the service around it only schedules records
and commits offsets. `process()` never raises (except cancellation): a bad event must never
stop the consumer.

Order per event, and what a crash at each point does:
1. decode; undecodable / oversized / unknown type -> dead-letter topic at once;
2. for records a previous owner may have handled: `is_published(event_id)` or a result on
   the results topic (`consumers.probe`)? -> skip (a redelivery whose result went out);
3. handle, retrying per `retry.RetryPolicy`; each provider call first takes a rate-limit token;
4. `claim(event_id)`: refused while another live claim exists; we then wait for it to be
   published (skip) or to expire (its holder died) before publishing ourselves;
5. publish the result keyed by the request id and AWAIT the broker's ack;
6. `mark_published(event_id)`;
7. the caller marks the offset complete; commits only advance over completed prefixes.
A crash before 5 redelivers the event and it is handled again (at-least-once handling). A
crash after 6 redelivers it and step 2 skips it. A crash between the broker's ack in 5 and 6
leaves a result without a marker: step 2 then also looks the request id up on the results
topic (`consumers.probe`) for records a previous owner of the partition may have processed.

What remains possible (documented, rare): a consumer that is not dead but stalled (a "zombie"
past its session timeout) publishing after the new owner looked; a task abandoned at the
revocation deadline whose result the producer still flushes afterwards; a result beyond the
probe's scan bound. Results are keyed by the request id so readers can drop such repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog

from consumers.deadletters import classify_decode_error, dead_letter_for, publish_dead_letter
from consumers.dedupe import DedupeStore, DedupeStoreError
from consumers.errors import EventRejected, NoHandler
from consumers.handlers import Completion, HandlerRegistry
from consumers.invoker import Handled, HandlerInvoker
from consumers.metrics import ConsumerMetrics
from consumers.probe import ResultsProbe
from consumers.publisher import EventPublisher
from consumers.ratelimit import RateLimiter
from consumers.retry import RetryPolicy
from consumers.settings import KafkaSettings
from core.logging import bind_log_scope, reset_log_scope
from schemas import (
    CompletionFailed,
    CompletionSucceeded,
    ErrorInfo,
    EventCodec,
    RequestEvent,
    child_traceparent,
)

__all__ = ["EventProcessor", "decode_record", "event_scope", "result_for"]

_log = structlog.get_logger(__name__)


def _parent_traceparent(headers: Any) -> str | None:
    """The request's traceparent header; child_traceparent() validates it."""
    for key, raw in headers or ():
        if key == "traceparent" and raw is not None:
            try:
                return str(raw.decode())
            except UnicodeDecodeError:
                return None
    return None


def event_scope(record: Any, event: RequestEvent) -> dict[str, Any]:
    """The fields every log line about this event carries."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "event_id": event.event_id,
        "task": event.task,
    }


def decode_record(record: Any, codec: EventCodec, max_event_bytes: int) -> RequestEvent:
    """The request event a consumed record holds; raises EventRejected (dead-letter it)."""
    value: bytes | None = record.value
    if value is None:
        raise EventRejected("malformed", "record has no value")
    if len(value) > max_event_bytes:
        raise EventRejected(
            "oversized",
            f"{len(value)} bytes > max_event_bytes {max_event_bytes}",
        )
    try:
        return codec.decode_request(value)
    except msgspec.DecodeError as exc:
        raise EventRejected(classify_decode_error(exc), str(exc)[:500]) from exc


def result_for(
    event: RequestEvent, handled: Handled, started: float
) -> CompletionSucceeded | CompletionFailed:
    """The result event of a handled request (`started`: monotonic time handling began)."""
    outcome, attempts, errors = handled
    result_id = f"{event.event_id}.result"
    if isinstance(outcome, Completion):
        return CompletionSucceeded(
            event_id=result_id,
            request_id=event.event_id,
            subject=event.subject,
            task=event.task,
            provider=outcome.provider,
            model=outcome.model,
            content=outcome.content,
            tool_calls=outcome.tool_calls,
            usage=outcome.usage,
            latency_ms=(time.monotonic() - started) * 1000,
            attempts=attempts,
        )
    return CompletionFailed(
        event_id=result_id,
        request_id=event.event_id,
        subject=event.subject,
        task=event.task,
        error=errors[0],
        attempts=max(1, attempts),
    )


@dataclass(frozen=True, slots=True)
class _TaskMetrics:
    completed: Any
    failed: Any


class EventProcessor:
    def __init__(
        self,
        *,
        settings: KafkaSettings,
        codec: EventCodec,
        registry: HandlerRegistry,
        publisher: EventPublisher,
        dedupe: DedupeStore,
        limiter: RateLimiter,
        metrics: ConsumerMetrics,
        policy: RetryPolicy,
        probe: ResultsProbe | None = None,
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._publisher = publisher
        self._dedupe = dedupe
        self._metrics = metrics
        self._probe = probe
        self.invoker = HandlerInvoker(
            settings=settings,
            registry=registry,
            publisher=publisher,
            limiter=limiter,
            metrics=metrics,
            policy=policy,
        )
        self._task_metrics: dict[str, _TaskMetrics] = {}

    def _metrics_for(self, task: str) -> _TaskMetrics:
        # Labelled children are looked up once per task, not once per event.
        found = self._task_metrics.get(task)
        if found is None:
            m = self._metrics
            found = self._task_metrics[task] = _TaskMetrics(
                completed=m.completed.labels(task),
                failed=m.failed.labels(task),
            )
        return found

    async def process(
        self, record: Any, *, maybe_redelivered: bool = False, retry: bool = False
    ) -> None:
        """Settle one record; returns when its outcome is durably published.

        `maybe_redelivered`: a previous owner of the partition may have processed this record,
        so when the dedupe store does not know its result, the results topic is checked.
        `retry`: an earlier call for this record failed, possibly after its result reached the
        log; the look-up then also covers results published since the probe's first scan.
        """
        traceparent = child_traceparent(_parent_traceparent(record.headers))
        try:
            event = self._decode(record)
        except EventRejected as exc:
            token = bind_log_scope(
                {"topic": record.topic, "partition": record.partition, "offset": record.offset}
            )
            try:
                await self._dead_letter(
                    record,
                    exc.reason,
                    [ErrorInfo(type=type(exc).__name__, message=str(exc)[:500], retriable=False)],
                    attempts=0,
                    traceparent=traceparent,
                )
            finally:
                reset_log_scope(token)
            return
        token = bind_log_scope(event_scope(record, event))
        try:
            await self._process_event(record, event, traceparent, maybe_redelivered, retry)
        finally:
            reset_log_scope(token)

    def _decode(self, record: Any) -> RequestEvent:
        return decode_record(record, self._codec, self._settings.max_event_bytes)

    async def _process_event(
        self,
        record: Any,
        event: RequestEvent,
        traceparent: str,
        maybe_redelivered: bool,
        retry: bool,
    ) -> None:
        # Only a record a previous owner may have processed can have a result already; for
        # the rest (the steady state) the claim in _publish_once still catches duplicates
        # produced upstream, and skipping the look-up saves a store round trip per event.
        if (maybe_redelivered or retry) and (
            await self._already_published(event.event_id)
            or await self._on_results_topic(event.event_id, record, refresh=retry)
        ):
            self._metrics.duplicates_skipped.inc()
            _log.info("consumer.duplicate_skipped")
            return
        started = time.monotonic()
        outcome, attempts, errors = await self.invoker.handle(event, traceparent)
        await self.settle_outcome(record, event, traceparent, (outcome, attempts, errors), started)

    async def settle_outcome(
        self,
        record: Any,
        event: RequestEvent,
        traceparent: str,
        handled: Handled,
        started: float,
    ) -> None:
        """Dead-letter a failure, then publish the event's result once."""
        result = self.result_for(event, handled, started)
        if isinstance(result, CompletionFailed):
            outcome, attempts, errors = handled
            reason = "no_handler" if isinstance(outcome, NoHandler) else "handler_failed"
            await self._dead_letter(
                record, reason, errors, attempts=attempts, traceparent=traceparent
            )
        await self.publish_result(event, result, traceparent)

    async def publish_result(
        self, event: RequestEvent, result: CompletionSucceeded | CompletionFailed, traceparent: str
    ) -> None:
        if await self._publish_once(event, result, traceparent):
            self.count_published(event.task, result)

    def count_published(self, task: str, result: CompletionSucceeded | CompletionFailed) -> None:
        if isinstance(result, CompletionSucceeded):
            self._metrics_for(task).completed.inc()
        else:
            self._metrics_for(task).failed.inc()

    def result_for(
        self,
        event: RequestEvent,
        handled: Handled,
        started: float,
    ) -> CompletionSucceeded | CompletionFailed:
        return result_for(event, handled, started)

    async def _already_published(self, event_id: str) -> bool:
        try:
            return await self._dedupe.is_published(event_id)
        except DedupeStoreError as exc:
            # Without the store we cannot tell; handling again is the at-least-once default.
            _log.warning("consumer.dedupe_unavailable", error=type(exc).__name__, detail=str(exc))
            return False

    async def _on_results_topic(self, event_id: str, record: Any, *, refresh: bool) -> bool:
        """The crash-window check (see `consumers.probe`); settles the marker when found."""
        if self._probe is None:
            return False
        found = await self._probe.contains(
            event_id.encode(), since_ms=int(record.timestamp), refresh=refresh
        )
        if not found:
            return False
        _log.warning("consumer.result_found_without_marker")
        try:
            if await self._dedupe.claim(event_id):
                await self._dedupe.mark_published(event_id)
        except DedupeStoreError as exc:
            _log.warning("consumer.dedupe_unavailable", error=type(exc).__name__)
        return True

    async def _publish_once(
        self, event: RequestEvent, result: CompletionSucceeded | CompletionFailed, traceparent: str
    ) -> bool:
        """Publish `result` unless it already was; True when this call published it."""
        poll_s = min(1.0, max(0.05, self._settings.dedupe_claim_ttl_s / 20))
        while True:
            try:
                if await self._dedupe.claim(event.event_id):
                    break
                if await self._dedupe.is_published(event.event_id):
                    self._metrics.duplicates_skipped.inc()
                    return False
            except DedupeStoreError as exc:
                _log.warning(
                    "consumer.dedupe_unavailable", error=type(exc).__name__, detail=str(exc)
                )
                if not exc.retriable:
                    break
            # A live claim elsewhere: its holder is publishing, or died and it will expire.
            await asyncio.sleep(poll_s)
        try:
            await self._publisher.publish(
                self._settings.topics.results.name,
                result,
                key=event.event_id,
                subject=event.subject,
                traceparent=traceparent,
            )
        except BaseException:
            with contextlib.suppress(DedupeStoreError):
                await asyncio.shield(self._dedupe.release(event.event_id))
            raise
        try:
            await self._dedupe.mark_published(event.event_id)
        except DedupeStoreError as exc:
            _log.warning("consumer.mark_published_failed", error=type(exc).__name__)
        return True

    async def _dead_letter(
        self,
        record: Any,
        reason: str,
        errors: list[ErrorInfo],
        *,
        attempts: int,
        traceparent: str,
    ) -> None:
        self._metrics.dead_lettered.labels(reason).inc()
        _log.warning("consumer.dead_lettered", reason=reason)
        if not self._settings.dead_letters_enabled:
            return
        letter, key = dead_letter_for(record, reason, errors, attempts=attempts)
        topic = self._settings.topics.dead_letters.name
        # A refused letter is sent again in its minimal form, so the record still settles.
        await publish_dead_letter(
            lambda dl: self._publisher.publish(topic, dl, key=key, traceparent=traceparent),
            letter,
            renew=self._publisher.renew,
        )
