"""Command line for running the embedded (mock) Kafka broker outside tests.

Why it exists: the mock is what a machine without Java can run, and the only broker with
protocol-level fault injection; ``python -m emulators.kafka`` starts one (several brokers if
asked), prints the bootstrap address, and runs until Ctrl-C or SIGTERM. ``gateway kafka`` is the
project's command for a local broker: it starts Apache Kafka when Java is present and this mock
otherwise (``gateway.broker``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

import structlog

from core.logging import configure_logging
from emulators.kafka.broker import EmbeddedKafka
from emulators.kafka.errors import KafkaEmulatorError

__all__ = ["main", "run"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9092, help="first front port (0 = free)")
    parser.add_argument("--brokers", type=int, default=1, help="number of mock brokers")
    parser.add_argument(
        "--partitions", type=int, default=4, help="partitions of auto-created topics"
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME[:PARTITIONS]",
        help="create a topic at start-up (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Start the broker described by ``args`` and block until SIGINT/SIGTERM."""
    if not structlog.is_configured():
        # Called without logging set up: keep stdout for the address line.
        configure_logging(json=False)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kafka = EmbeddedKafka(brokers=args.brokers, port=args.port, default_partitions=args.partitions)
    try:
        kafka.start()
        for spec in args.topic:
            name, _, partitions = spec.partition(":")
            kafka.create_topic(name, int(partitions) if partitions else None)
    except (KafkaEmulatorError, OSError, ValueError) as exc:
        kafka.stop()
        print(f"embedded kafka failed to start: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}", flush=True)
        stop.wait()
    finally:
        kafka.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.kafka",
        description="Run an embedded Kafka broker until Ctrl-C or SIGTERM.",
    )
    _add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging()
    return run(args)
