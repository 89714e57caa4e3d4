"""``python -m services kafka-jars``: resolve (once) and print the Kafka broker's classpath;
``python -m services s3-server``: build (once) the S3-compatible test server."""

from __future__ import annotations

import argparse
import sys

from services.errors import ServiceError
from services.kafka import KAFKA_VERSION, kafka_classpath
from services.s3 import VERSITYGW_VERSION, versitygw_binary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("kafka-jars", help=f"fetch Apache Kafka {KAFKA_VERSION}'s jars via Maven")
    sub.add_parser("s3-server", help=f"build versitygw {VERSITYGW_VERSION} with Go")
    args = parser.parse_args(argv)
    try:
        if args.command == "s3-server":
            binary = versitygw_binary(build=True)
            print(f"versitygw {VERSITYGW_VERSION}: {binary} ready")
            return 0
        jars = kafka_classpath().split(":")
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"kafka {KAFKA_VERSION}: {len(jars)} jars ready")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
