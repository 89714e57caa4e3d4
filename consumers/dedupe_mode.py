"""The `exactly_once: dedupe` mode's steps of the pipeline: look redeliveries up, then claim,
publish, acknowledge, settle and mark.

Why: with no Kafka transactions, a result is kept from being published twice by the dedupe
store (`consumers.dedupe`: claims and published markers around an idempotent producer) plus a
look-up on the results topic for the one crash window (`consumers.results_lookup`). Each step
asks the store or the broker once for a whole batch (a group-commit round of the partition,
`consumers._group_commit`), and the store's calls of concurrent rounds share a round trip.

Order per batch, and what a crash at each point does:
1. screen: records a previous owner may have handled (and records retried after a failed
   step) are looked up: `is_published_many`, then the results topic for those the store does
   not know; found -> settled as Skipped (a redelivery whose result went out);
2. `claim_many` for the results still to publish; a claim refused (held elsewhere, or already
   published) hands the record back, and its retry's screen finds the result or claims again;
3. publish every claimed verdict (a failure's dead letter, then its result, keyed by the
   request id) and AWAIT the broker's acknowledgements together;
4. settle: the offsets may now be committed and the slots are free;
5. `mark_published_many`.
A crash before 3's acknowledgement redelivers the record and it is handled again
(at-least-once handling). A crash after 5 redelivers it and step 1 skips it. A crash between
3 and 5 leaves a result without a marker, and possibly its offset committed (4 comes first: a
partition's next records start one store round trip sooner): a redelivery, which can only
follow a crash before the commit, is found on the results topic by step 1.

What remains possible (documented, rare): a consumer that is not dead but stalled (a "zombie"
past its session timeout) publishing after the new owner looked; a task abandoned at the
revocation deadline whose result the producer still flushes afterwards; a result beyond the
look-up's scan bound. Results are keyed by the request id so readers can drop such repeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from consumers.dedupe import CoalescingDedupeStore, DedupeStoreError
from consumers.errors import BrokerError, ClaimHeldElsewhere
from consumers.invoker import HandlerInvoker
from consumers.metrics import ConsumerMetrics
from consumers.publisher import EventPublisher
from consumers.records import ConsumedRecord, Delivery, Hooks, Skipped
from consumers.results_lookup import ResultsLookup
from consumers.settings import KafkaSettings

__all__ = ["DedupeDurability"]

_log = structlog.get_logger(__name__)


class DedupeDurability:
    """The `pipeline.Durability` of the dedupe mode (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: KafkaSettings,
        publisher: EventPublisher,
        store: CoalescingDedupeStore,
        lookup: ResultsLookup | None,
        metrics: ConsumerMetrics,
        invoker: HandlerInvoker,
    ) -> None:
        self._results = settings.topics.results.name
        self._publisher = publisher
        self._store = store
        self._lookup = lookup
        self._metrics = metrics
        self._invoker = invoker

    def invoker_for(self, record: ConsumedRecord) -> HandlerInvoker:
        return self._invoker

    def _result_unsent(self, delivery: Delivery) -> bool:
        return delivery.verdict is None or any(m.topic == self._results for m in delivery.unsent)

    # ------------------------------------------------------------------ step 1

    async def screen(self, deliveries: list[Delivery], hooks: Hooks) -> list[Delivery]:
        # Only a record a previous owner may have handled, or one whose publish failed, can
        # have a result already; for the rest (the steady state) the claim still catches
        # duplicates produced upstream, and skipping the look-up saves a store round trip.
        candidates = [
            d
            for d in deliveries
            if d.event is not None
            and self._result_unsent(d)
            and (d.failures > 0 or (d.maybe_redelivered and d.verdict is None))
        ]
        if not candidates:
            return deliveries
        try:
            known = await self._store.is_published_many([_id(d) for d in candidates])
        except DedupeStoreError as exc:
            # Without the store we cannot tell; handling again is the at-least-once default.
            _log.warning("consumer.dedupe_unavailable", error=type(exc).__name__, detail=str(exc))
            known = [False] * len(candidates)
        found: list[Delivery] = []
        for delivery, published in zip(candidates, known, strict=True):
            if published or await self._on_results_topic(delivery):
                found.append(delivery)
        if not found:
            return deliveries
        settled: list[Delivery] = []
        for delivery in found:
            if not delivery.attempted:
                delivery.settle(Skipped())
                settled.append(delivery)
                continue
            # Our own earlier send landed although it reported a failure: only what else
            # the verdict holds (a dead letter whose send failed) is left to send.
            delivery.unsent = [m for m in delivery.unsent if m.topic != self._results]
            if not delivery.unsent:
                self._published([delivery])
                settled.append(delivery)
        skipped = sum(1 for d in settled if isinstance(d.outcome, Skipped))
        if skipped:
            self._metrics.duplicates_skipped.inc(skipped)
            _log.info("consumer.duplicates_skipped", count=skipped)
        hooks.settled(settled)
        return [d for d in deliveries if d.outcome is None]

    async def _on_results_topic(self, delivery: Delivery) -> bool:
        """The crash-window check (see `consumers.results_lookup`); settles the marker when found.

        A retried record's look-up also reads results published since the first scan: this
        very process may have published it (a publish that failed after reaching the log).
        """
        if self._lookup is None:
            return False
        event_id = _id(delivery)
        try:
            found = await self._lookup.contains(
                event_id.encode(),
                since_ms=int(delivery.record.timestamp),
                refresh=delivery.failures > 0,
            )
        except BrokerError as exc:
            _log.warning("consumer.results_lookup_failed", error=exc.upstream)
            return False
        if not found:
            return False
        _log.warning("consumer.result_found_without_marker", event_id=event_id)
        try:
            if await self._store.claim(event_id):
                await self._store.mark_published(event_id)
        except DedupeStoreError as exc:
            _log.warning("consumer.dedupe_unavailable", error=type(exc).__name__)
        return True

    # ------------------------------------------------------------------ steps 2 to 5

    async def make_durable(
        self, deliveries: list[Delivery], hooks: Hooks
    ) -> list[tuple[Delivery, Exception]]:
        failures: list[tuple[Delivery, Exception]] = []
        to_claim = [d for d in deliveries if d.event is not None and self._result_unsent(d)]
        claimed = await self._claim(to_claim, failures)
        # Deliveries hash by identity: membership stays linear in large rounds.
        ours = set(claimed)
        sending = [d for d in deliveries if d.event is None or not self._result_unsent(d)]
        sending += claimed
        if not sending:
            return failures
        messages = [m for d in sending for m in d.unsent]
        for delivery in sending:
            delivery.attempted = True
        try:
            errors = await self._publisher.deliver(messages)
        except BaseException as exc:
            # Cancelled (the revocation deadline) or the producer failed: let a redelivery
            # or the retry claim again.
            await asyncio.shield(self._release(claimed))
            if not isinstance(exc, Exception):
                raise
            return failures + [(d, exc) for d in sending]
        done: list[Delivery] = []
        lost: list[Delivery] = []
        position = 0
        for delivery in sending:
            count = len(delivery.unsent)
            mine = list(zip(delivery.unsent, errors[position : position + count], strict=True))
            position += count
            delivery.unsent = [message for message, error in mine if error is not None]
            first = next((error for _, error in mine if error is not None), None)
            if first is None:
                done.append(delivery)
            else:
                _log.warning("consumer.publish_failed", error=first.upstream)
                failures.append((delivery, first))
                if delivery in ours:
                    lost.append(delivery)
        await self._release(lost)
        if done:
            self._published(done)
            # The results are acknowledged, so the offsets may be committed before the markers
            # are written (see the module docstring).
            hooks.settled(done)
            marked = [_id(d) for d in done if d in ours]
            if marked:
                try:
                    await self._store.mark_published_many(marked)
                except DedupeStoreError as exc:
                    _log.warning("consumer.mark_published_failed", error=type(exc).__name__)
        return failures

    async def _claim(
        self, deliveries: list[Delivery], failures: list[tuple[Delivery, Exception]]
    ) -> list[Delivery]:
        """The deliveries this process may publish now; the rest go to `failures`."""
        if not deliveries:
            return []
        try:
            granted = await self._store.claim_many([_id(d) for d in deliveries])
        except DedupeStoreError as exc:
            _log.warning("consumer.dedupe_unavailable", error=type(exc).__name__, detail=str(exc))
            if exc.retriable:
                failures.extend((d, exc) for d in deliveries)
                return []
            # A store that fails for good cannot dedupe: publishing is the at-least-once way.
            granted = [True] * len(deliveries)
        claimed: list[Delivery] = []
        for delivery, ok in zip(deliveries, granted, strict=True):
            if ok:
                claimed.append(delivery)
            else:
                # Published, or a live claim elsewhere whose holder is publishing (or died, and
                # it expires): the retry's screen tells which.
                failures.append((delivery, ClaimHeldElsewhere(f"{_id(delivery)} is claimed")))
        return claimed

    async def _release(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            try:
                await self._store.release(_id(delivery))
            except DedupeStoreError as exc:
                # The claim then expires after dedupe_claim_ttl_s; the retry waits for it.
                _log.warning("consumer.release_failed", error=type(exc).__name__)

    def _published(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            verdict = delivery.verdict
            assert verdict is not None
            if verdict.result is not None:
                self._metrics.count_result(verdict.result.task, succeeded=verdict.succeeded)
            delivery.settle_decided()


def _id(delivery: Delivery) -> str:
    assert delivery.event is not None  # only events are claimed and looked up
    return delivery.event.event_id
