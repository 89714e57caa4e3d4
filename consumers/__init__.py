"""Kafka consumers: request events in, results / status / dead letters out.

- `service.ConsumerService`: the runtime (lifecycle, fetch loop); `_dispatch` hands each
  partition's records to the pipeline (batches, per-key order, retries); `_commits` commits
  contiguous prefixes of settled offsets; `_rebalance` drains revoked partitions in time;
- `pipeline`: the one consume pipeline over a batch of one or more records (decode, screen,
  handle, decide, make durable), over `records` (Delivery, Verdict, Outcome set once);
  `_group_commit` runs its durable step in rounds per partition; `results.result_for` builds
  a handled request's result;
- `dedupe_mode`, `transactions_mode`: the two `exactly_once` modes' durable step (dedupe:
  claim, publish, settle, mark; transactions: staged into the transaction that commits the
  offset, with its rebalances); `_transactions`: per-partition transactional producers;
- `invoker`: running its handler (attempts, retries, holding back on the proxy's 429s, progress);
- `publisher`: CloudEvents-headed, idempotent publishing (`_lanes`: one record batch
  outstanding per partition, later messages joining the open one), refusals replaced by small
  forms;
  `murmur2`: the key partitioner in C; `results_lookup`: results already on the topic;
- `kinds`: request kinds (request, payload, result types), chat completion built in;
- `handlers`: the Handler protocol, registry per (kind, task); `handler_config` builds it from
  `gateway_settings.kafka.handlers`; `proxy_handler.ProxyCompletionHandler`;
- `offsets`, `key_order`, `backpressure`: commit tracking, per-key order, per-partition
  bounds and pausing;
- `retry`: the one retry policy; `errors`: the one error tree (`kafka_errors` translates
  aiokafka's); `settings`: gateway_settings.kafka;
- `dedupe`: cross-process dedupe of results (with its call coalescing), Redis or memory,
  opening Redis through `redis_client`; provider budgets are the proxy's (`budgets`);
- `gc_tuning`: garbage-collector settings for a long-running consumer process;
"""

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
from consumers.handlers import Completion, Handler, HandlerContext, HandlerRegistry, handler
from consumers.kinds import COMPLETION, EventKind
from consumers.offsets import PartitionOffsets
from consumers.proxy_handler import ProxyCompletionHandler
from consumers.retry import RetryPolicy
from consumers.service import ConsumerService
from consumers.settings import (
    KafkaSettings,
    ProxyClientSettings,
    RateLimitRule,
    RetrySettings,
    TopicSettings,
    TopicsSettings,
    load_kafka_settings,
)

__all__ = [
    "COMPLETION",
    "Completion",
    "ConsumerError",
    "ConsumerService",
    "EventKind",
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
    "ProxyClientSettings",
    "ProxyCompletionHandler",
    "RateLimitRule",
    "RetryPolicy",
    "RetrySettings",
    "TopicSettings",
    "TopicsSettings",
    "handler",
    "load_kafka_settings",
]
