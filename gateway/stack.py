"""What `gateway up`, `gateway consume` and `gateway kafka` run, once their settings are built.

Why it exists: the two commands that run consumers compose them from the same components in
the same order, so they cannot drift apart; `up` adds the emulators and the proxy in front.
Signals are the process owner's: each function here turns SIGINT / SIGTERM into an orderly
stop of what it started.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from gateway.broker import LocalBroker, choose_broker
from gateway.components import Component, EmbeddedEmulators, ProxyComponent, run_components
from gateway.pipeline import ConsumersComponent, KafkaComponent
from gateway.settings import ARTIFACT_KEY_ENV, MASTER_KEY_ENV, PROVIDER_ENV, StackSettings
from gateway.workers import ProxyWorkers

__all__ = ["run_broker", "serve_consumers", "serve_up"]


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _settle_heap() -> None:
    from consumers.gc_tuning import settle_heap  # noqa: PLC0415 - the consumers' GC tuning

    # Once everything has started: the start-up objects are frozen out of later collections.
    settle_heap()


async def serve_up(settings: StackSettings) -> None:
    """Emulators (for providers without keys), the proxy, and unless told not to, Kafka and
    consumers calling that proxy; until SIGINT or SIGTERM."""
    emulators = EmbeddedEmulators(settings)
    # One worker serves in this process; more are processes of their own on the same port.
    proxy: ProxyComponent | ProxyWorkers = (
        ProxyWorkers(settings, emulators)
        if settings.workers > 1
        else ProxyComponent(settings, emulators)
    )
    # Started in this order, stopped in reverse. New components go here.
    components: list[Component] = [emulators, proxy]
    # What each says about itself under the banner, once everything has started.
    described: list[Callable[[], list[str]]] = [emulators.describe, proxy.describe]
    if settings.with_kafka:
        kafka = KafkaComponent(settings)
        consumers = ConsumersComponent(
            settings,
            kafka,
            proxy_url=lambda: proxy.url,
            trusted_urls=lambda: list(emulators.urls.values()),
        )
        components += [kafka, consumers]
        described += [kafka.describe, consumers.describe]
    stop = _stop_on_signals()

    def ready() -> None:
        _print_banner(settings, emulators.urls, proxy.url)
        for describe in described:
            for line in describe():
                print(line, flush=True)
        _settle_heap()
        print("gateway: ready", flush=True)

    await run_components(components, stop, on_ready=ready)


async def serve_consumers(settings: StackSettings) -> None:
    """One consumer process of the group (and a local broker when no cluster is configured)."""
    kafka = KafkaComponent(settings)
    consumers = ConsumersComponent(settings, kafka)
    stop = _stop_on_signals()

    def ready() -> None:
        if kafka.choice.kind != "configured":
            for line in kafka.describe():
                print(line, file=sys.stderr, flush=True)
        _settle_heap()
        # Tests and supervisors wait for this line before producing.
        print(f"consumer ready group={consumers.group_id}", flush=True)

    await run_components([kafka, consumers], stop, on_ready=ready)


def _print_banner(settings: StackSettings, urls: dict[str, str], proxy_url: str) -> None:
    out: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    missing: Sequence[str] = settings.missing_providers
    if len(missing) == len(PROVIDER_ENV):
        out("gateway: running on the EMBEDDED DEFAULT (emulated providers, no real API calls)")
    elif missing:
        out(f"gateway: real providers, EMULATED for missing keys: {', '.join(missing)}")
    else:
        out("gateway: real providers (keys found in the environment)")
    for provider, url in urls.items():
        out(f"  emulated {provider:<9} {url}")
    out(f"gateway: proxy listening on {proxy_url} (OpenAI-compatible: {proxy_url}/v1)")
    if settings.master_key_generated:
        out(f"gateway: {MASTER_KEY_ENV} was not set; generated for this run: {settings.master_key}")
    if settings.signing_key_generated:
        # Not printed: nobody needs it but this run's processes, and links die with the run.
        out(f"gateway: {ARTIFACT_KEY_ENV} was not set; generated one for this run's artifact links")


def run_broker(
    settings: StackSettings, *, partitions: int, port: int | None, topics: Sequence[str]
) -> int:
    """Run the broker `--kafka` chooses until SIGINT/SIGTERM; print its address first.

    `topics` are `NAME[:PARTITIONS]` specs created at start-up. Returns an exit code.
    """
    from emulators.kafka import KafkaEmulatorError  # noqa: PLC0415 - the mock's errors
    from services import ServiceError  # noqa: PLC0415 - the launcher imports librdkafka

    # A broker run alone serves whoever connects, so a configured cluster plays no part.
    choice = choose_broker(settings.broker_mode, None)
    if port is not None and choice.kind == "real":
        hint = "--port sets the mock's port; Apache Kafka picks free ones (add --kafka mock)"
        print(f"gateway kafka: {hint}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before the start, so a Ctrl-C during the JVM's start-up still stops it.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    broker = LocalBroker(
        choice, default_partitions=partitions, mock_port=port or 0, data_dir=settings.kafka_data
    )
    try:
        try:
            broker.start()
            for spec in topics:
                name, _, count = spec.partition(":")
                broker.create_topic(name, int(count) if count else None)
        except (ServiceError, KafkaEmulatorError, ValueError) as exc:
            print(f"gateway kafka: the broker did not start: {exc}", file=sys.stderr)
            return 1
        print(broker.describe(), flush=True)
        # Last, and alone on its line: scripts and tests read the address from it.
        print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
        stop.wait()
    finally:
        broker.stop()
    return 0
