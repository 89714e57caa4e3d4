"""The one place where aiokafka's errors become `consumers.errors.BrokerError`s.

Why: callers branch on `retriable` and on a handful of meanings (refused for good, fenced,
timed out), never on aiokafka's hundred classes, so every call into aiokafka that can fail runs
inside `kafka_errors()`. aiokafka also asserts its own state transitions (a transaction that
can no longer abort, a partition no longer assigned), so an AssertionError raised inside the
block, which wraps nothing but aiokafka calls, is its state too.

aiokafka also logs a warning for every produce request it retries (a Kafka 4 broker answers
about one transactional produce in six NOT_ENOUGH_REPLICAS and takes the retry), which would
bury real warnings: `ProduceRetryFilter` counts those in a metric instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiokafka import errors as kafka

from consumers.errors import (
    BrokerError,
    BrokerRefused,
    BrokerTimeout,
    BrokerUnavailable,
    ClientStateError,
    OutOfSequence,
    ProducerFencedError,
    RecordTooLarge,
)

__all__ = ["ProduceRetryFilter", "is_refusal", "kafka_errors", "translate"]

# The narrower meanings first; what none of them names is retriable or refused by Kafka's
# own `retriable` flag.
_MEANINGS: tuple[tuple[tuple[type[BaseException], ...], type[BrokerError]], ...] = (
    (
        (kafka.ProducerFenced, kafka.InvalidProducerEpoch, kafka.TransactionCoordinatorFenced),
        ProducerFencedError,
    ),
    ((kafka.KafkaTimeoutError, kafka.RequestTimedOutError), BrokerTimeout),
    (
        (kafka.MessageSizeTooLargeError, kafka.RecordListTooLargeError, kafka.RecordTooLargeError),
        RecordTooLarge,
    ),
    ((kafka.OutOfOrderSequenceNumber,), OutOfSequence),
    ((kafka.IllegalStateError, AssertionError), ClientStateError),
)


def translate(error: BaseException) -> BrokerError:
    """The BrokerError that `error` (an aiokafka error, or aiokafka's AssertionError) means."""
    upstream = type(error).__name__
    try:
        text = str(error)
    except AttributeError:
        # aiokafka's bare BrokerResponseError has no errno, which its __str__ reads.
        text = ""
    message = f"{upstream}: {text}" if text else upstream
    for kinds, meaning in _MEANINGS:
        if isinstance(error, kinds):
            return meaning(message, upstream=upstream)
    if getattr(error, "retriable", False):
        return BrokerUnavailable(message, upstream=upstream)
    return BrokerRefused(message, upstream=upstream)


@contextmanager
def kafka_errors() -> Iterator[None]:
    """Raise the translation of any aiokafka error (or assertion) escaping the block."""
    try:
        yield
    except (kafka.KafkaError, AssertionError) as exc:
        raise translate(exc) from exc


def is_refusal(error: BaseException) -> bool:
    """True when the broker (or the producer's own size check) refused a record for good.

    A timeout is not a refusal: it says nothing about the record, which may even have landed,
    so it is left to the caller's retry like any retriable error.
    """
    return isinstance(error, BrokerRefused)


class ProduceRetryFilter(logging.Filter):
    """Drops aiokafka's warning of a produce it retries by itself, counting it in `counter`.

    Installed on `aiokafka.producer.sender` while a ConsumerService runs. Retries that end in
    a failure still surface: the batch's error reaches the publisher, which translates it.
    """

    def __init__(self, counter: Any) -> None:
        super().__init__()
        self._counter = counter

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        retried = message.startswith("Got error produce response on topic-partition") or (
            message.startswith("Got error produce response:")
            and isinstance(record.args, tuple)
            and bool(record.args)
            and bool(getattr(record.args[0], "retriable", False))
        )
        if retried:
            self._counter.inc()
        return not retried
