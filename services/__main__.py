"""``python -m services kafka-jars``: resolve (once) and print the Kafka broker's classpath."""

from __future__ import annotations

import argparse
import sys

from services.errors import ServiceError
from services.kafka import KAFKA_VERSION, kafka_classpath


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("kafka-jars", help=f"fetch Apache Kafka {KAFKA_VERSION}'s jars via Maven")
    parser.parse_args(argv)
    try:
        jars = kafka_classpath().split(":")
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"kafka {KAFKA_VERSION}: {len(jars)} jars ready")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
