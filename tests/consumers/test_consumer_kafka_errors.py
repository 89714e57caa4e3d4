"""Every aiokafka error maps into the consumers' error tree, with its retry semantics kept."""

from __future__ import annotations

import inspect

import pytest
from aiokafka import errors as kafka

from consumers import errors as ours
from consumers.kafka_errors import is_refusal, kafka_errors, translate

# aiokafka errors whose meaning is narrower than "retriable or not". A new aiokafka class
# falls to the generic rule below, which test_every_aiokafka_error_maps still checks.
SPECIAL: dict[type[BaseException], type[ours.BrokerError]] = {
    kafka.ProducerFenced: ours.ProducerFencedError,
    kafka.InvalidProducerEpoch: ours.ProducerFencedError,
    kafka.TransactionCoordinatorFenced: ours.ProducerFencedError,
    kafka.KafkaTimeoutError: ours.BrokerTimeout,
    kafka.RequestTimedOutError: ours.BrokerTimeout,
    kafka.MessageSizeTooLargeError: ours.RecordTooLarge,
    kafka.RecordListTooLargeError: ours.RecordTooLarge,
    kafka.RecordTooLargeError: ours.RecordTooLarge,
    kafka.IllegalStateError: ours.ClientStateError,
    kafka.OutOfOrderSequenceNumber: ours.OutOfSequence,
}
# Kafka calls these not retriable, but a timeout says nothing about the request, which may
# even have landed, and a batch out of order follows an earlier refusal: the runtime tries
# again (on a new producer).
RETRIED_ANYWAY = {kafka.KafkaTimeoutError, kafka.OutOfOrderSequenceNumber}


def _aiokafka_errors() -> list[type[kafka.KafkaError]]:
    return sorted(
        {
            cls
            for _, cls in inspect.getmembers(kafka, inspect.isclass)
            if issubclass(cls, kafka.KafkaError)
        },
        key=lambda cls: cls.__name__,
    )


@pytest.mark.parametrize("cls", _aiokafka_errors(), ids=lambda cls: cls.__name__)
def test_every_aiokafka_error_maps(cls: type[kafka.KafkaError]) -> None:
    """Each aiokafka error class becomes a BrokerError naming it, as retriable as Kafka says."""
    error = translate(cls())
    assert isinstance(error, ours.BrokerError)
    assert isinstance(error, ours.ConsumerError)
    assert error.upstream == cls.__name__
    expected = next((ours_ for theirs, ours_ in SPECIAL.items() if issubclass(cls, theirs)), None)
    if expected is not None:
        assert type(error) is expected
    else:
        generic = ours.BrokerUnavailable if cls.retriable else ours.BrokerRefused
        assert type(error) is generic
    assert error.retriable == (bool(cls.retriable) or cls in RETRIED_ANYWAY)


def test_only_refusals_for_good_count_as_refusals() -> None:
    """A refusal is what no retry fixes: too large or invalid, never a timeout or fencing."""
    assert is_refusal(translate(kafka.MessageSizeTooLargeError()))
    assert is_refusal(translate(kafka.InvalidTopicError()))
    assert not is_refusal(translate(kafka.KafkaTimeoutError()))
    assert not is_refusal(translate(kafka.NotLeaderForPartitionError()))
    assert not is_refusal(translate(kafka.ProducerFenced()))
    assert not is_refusal(translate(kafka.OutOfOrderSequenceNumber()))


def test_the_context_manager_chains_the_original_error() -> None:
    """`kafka_errors()` raises the translation from aiokafka's error, which stays its cause."""
    original = kafka.KafkaConnectionError("broker down")
    with pytest.raises(ours.BrokerUnavailable) as caught, kafka_errors():
        raise original
    assert caught.value.__cause__ is original
    assert "broker down" in str(caught.value)


def test_aiokafkas_assertions_are_its_state() -> None:
    """aiokafka asserts its own state transitions; inside the block that is a ClientStateError."""
    with pytest.raises(ours.ClientStateError), kafka_errors():
        raise AssertionError("Invalid state transition")


def test_errors_that_are_not_aiokafkas_pass_through() -> None:
    """Only aiokafka's errors are translated: a bug of ours stays what it is."""
    with pytest.raises(KeyError), kafka_errors():
        raise KeyError("ours")


def test_every_consumers_error_says_whether_it_is_retriable() -> None:
    """Each class of the tree, including the dedupe branch, is a ConsumerError with a boolean
    `retriable`."""
    from consumers import dedupe  # noqa: PLC0415 - the branch under test

    classes = [
        cls
        for module in (ours, dedupe)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Exception)
    ]
    assert dedupe.DedupeStoreError in classes
    for cls in classes:
        assert issubclass(cls, ours.ConsumerError), cls
        assert isinstance(cls.retriable, bool), cls
