"""`gateway_settings.kafka`: topics, consumer tuning, retries, exactly-once mode.

Why one typed section: every knob of the event pipeline is validated once at start-up (unknown
keys are errors that name the field) and passed down as one frozen object; nothing reads the
environment or the file later.

    gateway_settings:
      kafka:
        bootstrap_servers: null          # null: an embedded broker (development only)
        group_id: ai-gateway-consumers
        topics:
          requests: {name: ai.requests, partitions: 12}
        max_in_flight_per_partition: 64
        exactly_once: dedupe             # or: transactions (needs a real Kafka broker)

Rate limits are not kept here: the proxy holds every provider's budget for all callers
(`gateway_settings.budgets`), and the consumers wait out its 429s' Retry-After. `rate_limits`,
`rate_limit_redis_url` and `rate_limit_namespace` are still parsed, so older configs load, and
ignored; a non-empty `rate_limits` is named in a warning at start-up.

`exactly_once` chooses how a redelivered request is kept from publishing a second result:
- `dedupe` (the default): claims and published markers in Redis (`dedupe_redis_url`, with a
  per-process fallback) around an idempotent producer, plus a look-up on the results topic for
  the one crash window (`consumers.dedupe_mode`). Works on any broker, the embedded one included;
  results are visible as soon as each is acknowledged.
- `transactions`: Kafka's own exactly-once (`consumers.transactions_mode`): a record's result and
  dead letter are produced in the transaction that also commits its offset, one transactional
  producer per input partition; no Redis calls. Needs a real broker (the embedded one is
  refused), readers must use `isolation_level=read_committed`, and results appear per partition
  in offset order, one transaction (`transaction_interval_s`) after they are ready.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from core.config import load_section, read_config_file

__all__ = [
    "ConsumerTuning",
    "ExactlyOnce",
    "HandlerSpec",
    "KafkaSettings",
    "ProxyClientSettings",
    "RateLimitRule",
    "RetrySettings",
    "TopicSettings",
    "TopicsSettings",
    "load_kafka_settings",
]

_Positive = Annotated[int, msgspec.Meta(gt=0)]
_PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
_NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]


class _Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Config Structs reject unknown fields: a typo must fail loudly at start-up."""


class TopicSettings(_Config, frozen=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=249)]
    partitions: _Positive = 6
    replication: _Positive = 1


class TopicsSettings(_Config, frozen=True, kw_only=True):
    requests: TopicSettings = TopicSettings(name="ai.requests")
    results: TopicSettings = TopicSettings(name="ai.results")
    status: TopicSettings = TopicSettings(name="ai.status")
    dead_letters: TopicSettings = TopicSettings(name="ai.dead-letters", partitions=3)

    def all(self) -> list[TopicSettings]:
        return [self.requests, self.results, self.status, self.dead_letters]


class RetrySettings(_Config, frozen=True, kw_only=True):
    """Handler retries: exponential backoff with jitter; only retriable errors are retried."""

    max_attempts: _Positive = 4
    initial_backoff_s: _NonNegFloat = 0.5
    max_backoff_s: _NonNegFloat = 30.0
    multiplier: Annotated[float, msgspec.Meta(ge=1)] = 2.0
    jitter: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2
    # Cap on how long a 429's Retry-After may park one event before it counts as an attempt.
    max_retry_after_s: _NonNegFloat = 60.0
    # 429s are expected under load and are waited out (their Retry-After), so they get their own,
    # larger budget instead of using up the attempts meant for real failures.
    max_rate_limited_retries: Annotated[int, msgspec.Meta(ge=0)] = 20


class RateLimitRule(_Config, frozen=True, kw_only=True):
    """Deprecated and ignored (see the module docstring): the shape older configs used."""

    provider: str
    task: str = "*"
    rate_per_s: _PositiveFloat
    burst: _Positive = 1
    min_rate_per_s: _PositiveFloat | None = None
    recovery_per_s: _PositiveFloat | None = None


class ProxyClientSettings(_Config, frozen=True, kw_only=True):
    """Where ProxyCompletionHandler sends requests; the key itself comes from the environment
    (LITELLM_MASTER_KEY) read once by the entry point, never from this file."""

    url: str = "http://127.0.0.1:4000"
    # Budget of one delivery when the event has no deadline, sent as x-gateway-timeout-ms: the
    # proxy starts no retry or fallback after it and answers by then.
    timeout_s: _PositiveFloat = 120.0
    provider: str = "proxy"
    # Deliveries of one event to the proxy, the first included, 429s too. The proxy retries and
    # falls back itself, so a delivery is repeated only when it reports that the whole chain
    # failed retriably: at most max_deliveries x attempts x providers provider calls per event.
    max_deliveries: _Positive = 2


class HandlerSpec(_Config, frozen=True, kw_only=True):
    """One configured handler: the factory that builds it, the tasks it serves, its options.

    `factory` is "package.module:name"; a factory declaring an `Options` Struct gets `options`
    converted into it at start-up (an unknown or ill-typed option is an error naming it). The
    handler's `kind` (default: chat completion) says which request type it serves, so two
    entries may serve the same task for different kinds.
    """

    factory: Annotated[str, msgspec.Meta(pattern=r"^[\w.]+:[\w.]+$")]
    tasks: Annotated[list[str], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["*"]
    )
    options: dict[str, object] = msgspec.field(default_factory=dict)


class ConsumerTuning(_Config, frozen=True, kw_only=True):
    """aiokafka consumer timings (defaults suit production; tests shorten them)."""

    fetch_max_wait_ms: _Positive = 500
    # The broker answers a fetch once this much data is there (or fetch_max_wait_ms passed).
    # 1 answers at once; raising it (with a short fetch_max_wait_ms) makes fewer, larger
    # fetches at high rates, each record waiting at most fetch_max_wait_ms for company.
    fetch_min_bytes: _Positive = 1
    session_timeout_ms: _Positive = 10_000
    heartbeat_interval_ms: _Positive = 3_000
    max_poll_interval_ms: _Positive = 300_000
    max_poll_records: _Positive = 500
    auto_offset_reset: str = "earliest"
    request_timeout_ms: _Positive = 40_000
    retry_backoff_ms: _Positive = 100


ExactlyOnce = Literal["dedupe", "transactions"]


class KafkaSettings(_Config, frozen=True, kw_only=True):
    bootstrap_servers: str | None = None
    client_id: str = "ai-gateway"
    source: str = "urn:fashion-ai-gateway:consumers"
    group_id: str = "ai-gateway-consumers"
    topics: TopicsSettings = TopicsSettings()
    max_in_flight_per_partition: _Positive = 64
    ordering_per_key: bool = True
    max_event_bytes: _Positive = 1_048_576
    # A successful result whose encoded event is larger is not published: a CompletionFailed
    # ("result_too_large", naming both sizes) goes out in its place. Why: the broker refuses a
    # record over its `message.max.bytes` (1048588 by default), and a refused result would
    # stall its partition. The default leaves room for key, headers and batch framing under
    # Kafka's default; large artifacts belong in storage, referenced from the result.
    max_result_bytes: _Positive = 900_000
    retry: RetrySettings = RetrySettings()
    dead_letters_enabled: bool = True
    # How a redelivered request is kept from publishing twice (see the module docstring).
    exactly_once: ExactlyOnce = "dedupe"
    # Transactions mode: a partition's finished results are committed at most this often
    # (Kafka Streams' exactly-once default is 100 ms); 0 starts the next transaction as soon as
    # the previous one ends. Results wait up to this long, plus the transaction, to appear.
    transaction_interval_s: _NonNegFloat = 0.1
    dedupe_redis_url: str | None = "redis://127.0.0.1:6379/0"
    dedupe_namespace: str = "ai-gateway:dedupe"
    # How long a publish claim blocks other consumers; a redelivery of an event whose
    # publisher died waits this long before publishing itself.
    dedupe_claim_ttl_s: _PositiveFloat = 30.0
    # Deprecated and ignored: the proxy's budgets (`gateway_settings.budgets`) limit calls.
    rate_limit_redis_url: str | None = "redis://127.0.0.1:6379/0"
    rate_limit_namespace: str = "ai-gateway:ratelimit"
    rate_limits: list[RateLimitRule] = msgspec.field(default_factory=list)
    commit_interval_s: _PositiveFloat = 1.0
    drain_timeout_s: _NonNegFloat = 25.0
    revoke_timeout_s: _NonNegFloat = 10.0
    metrics_port: int | None = None
    consumer: ConsumerTuning = ConsumerTuning()
    proxy: ProxyClientSettings = ProxyClientSettings()
    # The handlers, per request kind and task; none configured: the proxy serves every task.
    handlers: list[HandlerSpec] = msgspec.field(default_factory=list)
    # Shorthand for one handler serving every task ("module:name", options from the command
    # line); used by `gateway consume --handler`. Exclusive with `handlers`.
    handler: str | None = None

    def __post_init__(self) -> None:
        if self.handler is not None and self.handlers:
            raise ValueError("set either `handler` or `handlers`, not both")


def load_kafka_settings(path: str | Path | None) -> KafkaSettings:
    """`gateway_settings.kafka` of the config file at `path`; defaults when `path` is None."""
    if path is None:
        return KafkaSettings()
    return load_section(read_config_file(path), "kafka", KafkaSettings)
