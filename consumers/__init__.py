"""Kafka consumers: request events in, results / status / dead letters out.

- `service.ConsumerService`: the runtime (fetch, schedule per partition); `_commits` commits
  contiguous prefixes of finished offsets; `_rebalance` drains revoked partitions in time;
- `fastpath`: settles a fetched batch as a unit (one dedupe call per step, acks together);
- `processor`: one record's life (decode, dedupe, publish once, dead-letter);
- `transactional`: the `exactly_once: transactions` mode's settle path and rebalances, each
  record's outcome produced in the transaction that commits its offset; `_transactions`: its
  per-partition transactional producers and commits;
- `invoker`: running its handler (rate-limit tokens, attempts, retries, progress reports);
- `publisher`: CloudEvents-headed, idempotent publishing; `partitioner`: murmur2 in C;
- `handlers`: the Handler protocol and registry; `proxy_handler.ProxyCompletionHandler`;
- `offsets`, `keyed`, `partitions`: commit tracking, per-key order, backpressure;
- `retry`: the one retry policy; `errors`: the error tree; `settings`: gateway_settings.kafka;
- `dedupe`, `ratelimit`: cross-process dedupe of results and rate limits (Redis or memory),
  both opening Redis through `redis_client`;
- `batched`: coalesces concurrent events' dedupe calls into batched round trips;
- `heap`: garbage-collector settings for a long-running consumer process;
- `cli`: `gateway consume`, `gateway topics ensure`, `gateway send`.
"""

from consumers.cli import main, register
from consumers.errors import (
    ConsumerError,
    EventRejected,
    HandlerError,
    NoHandler,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from consumers.handlers import Completion, Handler, HandlerContext, HandlerRegistry
from consumers.offsets import PartitionOffsets
from consumers.proxy_handler import ProxyCompletionHandler
from consumers.retry import RetryPolicy
from consumers.service import ConsumerService
from consumers.settings import (
    KafkaSettings,
    ProxySettings,
    RateLimitRule,
    RetrySettings,
    TopicSettings,
    TopicsSettings,
    load_kafka_settings,
)

__all__ = [
    "Completion",
    "ConsumerError",
    "ConsumerService",
    "EventRejected",
    "Handler",
    "HandlerContext",
    "HandlerError",
    "HandlerRegistry",
    "KafkaSettings",
    "NoHandler",
    "PartitionOffsets",
    "ProviderAuthError",
    "ProviderBadRequest",
    "ProviderNotFound",
    "ProviderRateLimited",
    "ProviderTimeout",
    "ProviderUnavailable",
    "ProxyCompletionHandler",
    "ProxySettings",
    "RateLimitRule",
    "RetryPolicy",
    "RetrySettings",
    "TopicSettings",
    "TopicsSettings",
    "load_kafka_settings",
    "main",
    "register",
]
