"""Command line for the provider emulators: ``python -m emulators <name|all> [--port N]``.

Why it exists: developers and the benchmark run emulators as plain processes; ``register``
lets the gateway's own CLI offer the same command as ``gateway emulators ...``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

import structlog

from core.logging import configure_logging
from emulators import PROVIDERS, EmulatorServer, EmulatorSettings, start_emulator

__all__ = ["build_parser", "main", "register", "run"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("provider", choices=[*PROVIDERS, "all"], help="which emulator to run")
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="port to bind (0 picks a free one; with 'all', consecutive ports from N)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help="accept only this key (repeatable); by default any non-empty key is accepted",
    )
    parser.add_argument("--rate-limit-rps", type=float, default=None, help="429 beyond this rate")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``emulators`` subcommand to another CLI's subparsers."""
    parser = subparsers.add_parser("emulators", help="run provider API emulators locally")
    _add_arguments(parser)
    parser.set_defaults(handler=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulators", description=__doc__)
    _add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Start the chosen emulators, print their URLs, and serve until SIGINT or SIGTERM."""
    configure_logging(json=False, level="WARNING")
    settings = EmulatorSettings(
        allowed_keys=frozenset(args.api_keys) if args.api_keys else None,
        rate_limit_rps=args.rate_limit_rps,
    )
    names = PROVIDERS if args.provider == "all" else (args.provider,)
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    servers: list[EmulatorServer] = []
    try:
        for offset, name in enumerate(names):
            port = args.port + offset if args.port else 0
            servers.append(start_emulator(name, port=port, host=args.host, settings=settings))
            sys.stdout.write(f"{name} {servers[-1].url}\n")
            structlog.get_logger().info("emulator started", provider=name, url=servers[-1].url)
        sys.stdout.flush()
        done.wait()
    finally:
        for server in servers:
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
