"""Errors of the consumer runtime, its handlers, its stores and the broker it talks to.

Why one tree: the runtime decides retry / dead-letter / final failure from `retriable` alone,
so handlers (and the proxy client's HTTP errors, translated once in `proxy_handler`) raise
these, aiokafka's errors are translated into the `BrokerError` branch in one place
(`consumers.kafka_errors`), and Redis's into the store branches (`consumers.redis_client`).

    ConsumerError                       retriable = False
    ├── ConfigurationError              retriable = False  (also a ValueError: bad settings)
    │   └── TransactionsUnsupported     retriable = False  (transactions on the embedded broker)
    ├── NotStarted                      retriable = False  (used before start() / after stop())
    ├── OutcomeAlreadySet               retriable = False  (a record settled twice: a bug)
    ├── OffsetOrderError                retriable = False  (offsets tracked out of order: a bug)
    ├── ClaimHeldElsewhere              retriable = True   (another holder publishes the result)
    ├── EventRejected                   retriable = False  (undecodable, oversized, unknown type)
    ├── NoHandler                       retriable = False  (no handler registered for the task)
    ├── HandlerError                    retriable = False
    │   ├── ProviderBadRequest          retriable = False  (HTTP 400 / 422)
    │   ├── ProviderAuthError           retriable = False  (HTTP 401 / 403)
    │   ├── ProviderNotFound            retriable = False  (HTTP 404: unknown task / model)
    │   ├── ProviderRateLimited         retriable = True   (HTTP 429, optional retry_after_s)
    │   │   └── AllProvidersRateLimited retriable = True   (the proxy's 429 after a whole chain)
    │   ├── ProviderUnavailable         retriable = True   (HTTP 5xx, connection errors)
    │   ├── ProviderTimeout             retriable = True   (no answer in time)
    │   ├── ProviderFailed              retriable = False  (5xx the proxy did not mark retriable)
    │   └── DeadlineExceeded            retriable = False  (the event's deadline passed)
    ├── BrokerError                     retriable = False  (`upstream`: aiokafka's class name)
    │   ├── BrokerUnavailable           retriable = True   (connection, leader, coordinator)
    │   ├── BrokerTimeout               retriable = True   (no answer in time)
    │   ├── BrokerRefused               retriable = False  (refused for good)
    │   │   └── RecordTooLarge          retriable = False  (over message.max.bytes)
    │   ├── OutOfSequence               retriable = True   (after a refusal: a new producer)
    │   ├── ProducerRetired             retriable = True   (its producer was renewed unsent)
    │   ├── ProducerFencedError         retriable = False  (a newer producer took the id over)
    │   └── ClientStateError            retriable = False  (aiokafka's own state forbids it)
    └── DedupeStoreError                (`consumers.dedupe.errors`: its own branch)
"""

from __future__ import annotations

__all__ = [
    "AllProvidersRateLimited",
    "BrokerError",
    "BrokerRefused",
    "BrokerTimeout",
    "BrokerUnavailable",
    "ClaimHeldElsewhere",
    "ClientStateError",
    "ConfigurationError",
    "ConsumerError",
    "DeadlineExceeded",
    "EventRejected",
    "HandlerError",
    "NoHandler",
    "NotStarted",
    "OffsetOrderError",
    "OutOfSequence",
    "OutcomeAlreadySet",
    "ProducerFencedError",
    "ProducerRetired",
    "ProviderAuthError",
    "ProviderBadRequest",
    "ProviderFailed",
    "ProviderNotFound",
    "ProviderRateLimited",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RecordTooLarge",
    "TransactionsUnsupported",
]


class ConsumerError(Exception):
    """Root of every error raised by `consumers`."""

    retriable: bool = False


class ConfigurationError(ConsumerError, ValueError):
    """Settings or arguments that cannot work, found at start-up (a ValueError too)."""


class TransactionsUnsupported(ConfigurationError):
    """`exactly_once: transactions` on a broker that cannot keep its promise (the embedded one)."""


class NotStarted(ConsumerError):
    """A component was used outside its start() / stop() lifecycle."""


class OutcomeAlreadySet(ConsumerError):
    """A record's outcome was set a second time: the pipeline settled one record twice."""


class OffsetOrderError(ConsumerError):
    """An offset was added out of order, or an offset never added was completed: a bug."""


class ClaimHeldElsewhere(ConsumerError):
    """Another holder claimed the event's result and has not published it yet: try later."""

    retriable = True


class EventRejected(ConsumerError):
    """The record cannot become an event: it goes to the dead-letter topic at once.

    `reason` is a short machine-readable code: malformed, unknown_type, oversized, invalid.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class NoHandler(ConsumerError):
    """No handler is registered for the event's type or task."""


class HandlerError(ConsumerError):
    """A handler could not produce a result; subclasses say whether trying again may help."""


class ProviderBadRequest(HandlerError):
    """The proxy rejected the request as invalid; retrying sends the same bad request."""


class ProviderAuthError(HandlerError):
    """The proxy refused our credentials."""


class ProviderNotFound(HandlerError):
    """The proxy does not know the task (model) or route."""


class ProviderRateLimited(HandlerError):
    """The proxy answered 429; `retry_after_s` is its Retry-After when it sent one."""

    retriable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProviderUnavailable(HandlerError):
    """The proxy or the provider behind it failed (5xx) or could not be reached."""

    retriable = True


class ProviderTimeout(HandlerError):
    """No answer within the configured timeout."""

    retriable = True


class BrokerError(ConsumerError):
    """Kafka (or its client) failed a call; `upstream` names aiokafka's error class."""

    def __init__(self, message: str, *, upstream: str) -> None:
        super().__init__(message)
        self.upstream = upstream


class BrokerUnavailable(BrokerError):
    """The broker, a partition leader or a coordinator could not be reached or is moving."""

    retriable = True


class BrokerTimeout(BrokerError):
    """No answer within the client's timeout; what was sent may still have landed."""

    retriable = True


class BrokerRefused(BrokerError):
    """The broker (or the client's own check) refused the request for good."""


class RecordTooLarge(BrokerRefused):
    """A record or its batch is over the broker's or the topic's size limit."""


class OutOfSequence(BrokerError):
    """The broker refused a batch as out of order: an earlier batch to its partition was
    refused, and only a new producer (a new producer id) writes there again."""

    retriable = True


class ProducerRetired(BrokerError):
    """A batch handed to a producer that was renewed (`EventPublisher.renew`) before it
    acknowledged the batch: it was never acknowledged, so it is sent again on the new one."""

    retriable = True


class ProducerFencedError(BrokerError):
    """A newer producer of the same transactional id took over: this one may not write again."""


class ClientStateError(BrokerError):
    """aiokafka's own state forbids the call (a partition no longer assigned, a transaction
    in a state that cannot move on)."""


class ProviderFailed(HandlerError):
    """The proxy failed the request without marking it retriable (`x-gateway-retriable`): its
    own retries and fallbacks are spent, or a provider refused for good, so sending the request
    again would only repeat that."""


class DeadlineExceeded(HandlerError):
    """The event's deadline passed (before a call, or the proxy gave up at it): nobody waits
    for the answer any more, so no further call is made."""


class AllProvidersRateLimited(ProviderRateLimited):
    """The proxy answered 429 after every provider of the task rate-limited it
    (`x-gateway-retriable: true`): unlike a plain 429, that delivery cost a whole chain of
    provider calls, so it counts against the handler's `max_deliveries`."""
