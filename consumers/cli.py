"""`gateway consume`, `gateway topics ensure` and `gateway send`.

Why here: the consumer process is the unit operators scale, kill and restart; its entry point
builds the one settings object, configures logging, and turns SIGTERM into a graceful drain.
`register(subparsers)` plugs these commands into the `gateway` CLI; `main(argv)` runs them
standalone (`python -m consumers ...`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import mimetypes
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import msgspec
import structlog
import uvloop
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from consumers.handlers import Handler, load_handler_factory
from consumers.heap import settle_heap
from consumers.proxy_handler import ProxyCompletionHandler
from consumers.publisher import EventPublisher
from consumers.service import ConsumerService
from consumers.settings import KafkaSettings, load_kafka_settings
from core.logging import configure_logging
from schemas import (
    ChatMessage,
    CompletionRequested,
    ContentPart,
    EventCodec,
    ImagePart,
    ImageURL,
    TextPart,
)

__all__ = ["build_parser", "main", "register"]


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="litellm_config.yaml holding gateway_settings.kafka")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides the config)")


def _sync(
    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[..., int]:
    """Wrap an async command so any CLI can call `args.func(args)` and get an exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            # uvloop: the consume loop's per-event scheduling costs markedly less on it.
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(command(args))
        except KeyboardInterrupt:
            return 130

    return run


def register(subparsers: Any) -> None:
    """Add `consume`, `topics` and `send` to an argparse subparsers object.

    Each command sets `func`: `args.func(args)` runs it and returns the exit code. The caller
    configures logging first (`core.logging.configure_logging`).
    """
    consume = subparsers.add_parser("consume", help="run a request consumer until SIGTERM")
    _add_common(consume)
    consume.add_argument("--proxy-url", help="base URL of the proxy (overrides the config)")
    consume.add_argument("--group", help="consumer group id (overrides the config)")
    consume.add_argument("--handler", help="'module:Name' handler factory instead of the proxy")
    consume.add_argument(
        "--handler-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument for the handler factory (repeatable)",
    )
    consume.add_argument("--metrics-port", type=int, help="serve Prometheus metrics here")
    consume.set_defaults(func=_sync(_consume))

    topics = subparsers.add_parser("topics", help="manage the configured topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    ensure = topics_sub.add_parser("ensure", help="create missing topics (idempotent)")
    _add_common(ensure)
    ensure.set_defaults(func=_sync(_ensure))

    send = subparsers.add_parser("send", help="publish a CompletionRequested")
    _add_common(send)
    send.add_argument("--task", required=True)
    send.add_argument("--text", required=True)
    send.add_argument("--image", action="append", default=[], help="image file (repeatable)")
    send.add_argument("--subject", help="ordering key (default: a new id)")
    send.add_argument("--wait", action="store_true", help="wait for the result")
    send.add_argument("--timeout", type=float, default=120.0)
    send.set_defaults(func=_sync(_send))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m consumers")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(json=not sys.stderr.isatty())
    return int(args.func(args))


def _settings(args: argparse.Namespace) -> KafkaSettings:
    settings = load_kafka_settings(args.config)
    changes: dict[str, Any] = {}
    # Precedence: the flag, then the environment (how deployments and `gateway up` say where
    # the cluster is), then the config file.
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        changes["bootstrap_servers"] = bootstrap
    if redis_url := os.environ.get("REDIS_URL"):
        # One Redis holds both the dedupe records and the shared rate-limit buckets.
        changes["dedupe_redis_url"] = redis_url
        changes["rate_limit_redis_url"] = redis_url
    if getattr(args, "group", None):
        changes["group_id"] = args.group
    if getattr(args, "metrics_port", None) is not None:
        changes["metrics_port"] = args.metrics_port
    if getattr(args, "handler", None):
        changes["handler"] = args.handler
    if getattr(args, "proxy_url", None):
        changes["proxy"] = msgspec.structs.replace(settings.proxy, url=args.proxy_url)
    return msgspec.structs.replace(settings, **changes)


@contextlib.asynccontextmanager
async def _bootstrap(settings: KafkaSettings) -> AsyncIterator[str]:
    """The configured brokers, or an embedded development broker when none is configured."""
    if settings.bootstrap_servers is not None:
        yield settings.bootstrap_servers
        return
    from emulators.kafka import EmbeddedKafka  # noqa: PLC0415 - development-only dependency

    with EmbeddedKafka(brokers=1) as kafka:
        for topic in settings.topics.all():
            kafka.create_topic(topic.name, topic.partitions)
        structlog.get_logger(__name__).warning(
            "consumer.embedded_broker", bootstrap_servers=kafka.bootstrap_servers
        )
        yield kafka.bootstrap_servers


def _handler(settings: KafkaSettings, options: list[str]) -> Handler:
    if settings.handler is not None:
        kwargs = dict(option.split("=", 1) for option in options)
        return load_handler_factory(settings.handler)(**kwargs)
    # Read once at start-up; the key is never logged or put in errors.
    api_key = os.environ.get("LITELLM_MASTER_KEY")
    return ProxyCompletionHandler.from_settings(settings.proxy, api_key=api_key)


async def _consume(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.exactly_once == "transactions" and settings.bootstrap_servers is None:
        sys.stderr.write(
            "exactly_once: transactions needs a real Kafka cluster (--bootstrap, "
            "KAFKA_BOOTSTRAP_SERVERS or kafka.bootstrap_servers); the embedded broker "
            "supports only exactly_once: dedupe\n"
        )
        return 2
    handler = _handler(settings, args.handler_option)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with _bootstrap(settings) as servers:
        service = ConsumerService(settings, handler, bootstrap_servers=servers)
        async with service:
            # Tests and supervisors wait for this line before producing.
            settle_heap()
            sys.stdout.write(f"consumer ready group={settings.group_id}\n")
            sys.stdout.flush()
            await stop.wait()
    return 0


async def ensure_topics(settings: KafkaSettings, bootstrap_servers: str) -> list[str]:
    """Create every configured topic that does not exist yet; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=settings.client_id)
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        for topic in settings.topics.all():
            if topic.name in existing:
                continue
            new = NewTopic(topic.name, topic.partitions, topic.replication)
            try:
                await admin.create_topics([new])
            except TopicAlreadyExistsError:
                continue  # created concurrently by another process
            created.append(topic.name)
    finally:
        await admin.close()
    return created


async def _ensure(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.bootstrap_servers is None:
        sys.stderr.write("topics ensure needs --bootstrap or kafka.bootstrap_servers\n")
        return 2
    created = await ensure_topics(settings, settings.bootstrap_servers)
    for topic in settings.topics.all():
        state = "created" if topic.name in created else "exists"
        sys.stdout.write(f"{topic.name} partitions={topic.partitions} {state}\n")
    return 0


def _image_part(path: str) -> ImagePart:
    data = Path(path).read_bytes()
    mime = mimetypes.guess_type(path)[0] or "image/jpeg"
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return ImagePart(image_url=ImageURL(url=url))


async def _send(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.bootstrap_servers is None:
        sys.stderr.write("send needs --bootstrap or kafka.bootstrap_servers\n")
        return 2
    parts: list[ContentPart] = [TextPart(text=args.text)]
    parts.extend(_image_part(path) for path in args.image)
    content: str | list[ContentPart] = args.text if len(parts) == 1 else parts
    event = CompletionRequested(
        event_id=str(uuid.uuid4()),
        subject=args.subject or str(uuid.uuid4()),
        task=args.task,
        messages=[ChatMessage(role="user", content=content)],
    )
    codec = EventCodec()
    watcher = None
    if args.wait:
        # Subscribe before publishing so a fast result cannot be missed.
        watcher = AIOKafkaConsumer(
            settings.topics.results.name,
            settings.topics.status.name,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            auto_offset_reset="latest",
            fetch_max_wait_ms=100,
            # Transactions mode's results are visible once committed; plain ones at once.
            isolation_level="read_committed",
        )
        await watcher.start()
        await watcher.seek_to_end()
        for tp in watcher.assignment():
            await watcher.position(tp)
    publisher = EventPublisher(settings, settings.bootstrap_servers, codec)
    await publisher.start()
    try:
        await publisher.publish(
            settings.topics.requests.name, event, key=event.subject, subject=event.subject
        )
        sys.stdout.write(f"sent {event.event_id}\n")
        if watcher is not None:
            return await _await_result(watcher, codec, settings, event.event_id, args.timeout)
        return 0
    finally:
        await publisher.stop()
        if watcher is not None:
            await watcher.stop()


async def _await_result(
    watcher: Any, codec: EventCodec, settings: KafkaSettings, request_id: str, timeout_s: float
) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        batches = await watcher.getmany(timeout_ms=200)
        for tp, records in batches.items():
            for record in records:
                try:
                    if tp.topic == settings.topics.status.name:
                        status = codec.decode_status(record.value)
                        if status.request_id == request_id:
                            sys.stdout.write(
                                f"progress {status.progress:.0%} {status.stage} {status.message}\n"
                            )
                        continue
                    result = codec.decode_result(record.value)
                except msgspec.DecodeError:
                    continue
                if result.request_id != request_id:
                    continue
                sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
                return (
                    0
                    if result.event_id and result.__struct_config__.tag == ("completion.succeeded")
                    else 1
                )
        sys.stdout.flush()
    sys.stderr.write("timed out waiting for the result\n")
    return 1
