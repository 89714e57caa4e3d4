"""The `gateway` command: `up`, `kafka`, `config check`, and the subcommands other packages
register.

Why it exists: one entry point starts everything a developer or a deployment needs. Without
provider keys `gateway up` runs on the EMBEDDED DEFAULT: provider emulators started in-process,
so the whole product works offline; with keys it uses the real providers. Without a configured
Kafka cluster it starts a broker (`proxy.broker` says which); `gateway kafka` runs one alone.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from core.config import ConfigError
from proxy.broker import BROKER_MODES

__all__ = ["build_parser", "main"]

# Modules that add subcommands through `register(subparsers)`; absent ones are skipped.
# `kafka` is not among them: `gateway kafka` chooses between Apache Kafka and the mock, which
# `python -m emulators.kafka` alone still runs.
_PLUGIN_MODULES = ("emulators.cli", "consumers.cli")
DEFAULT_CONFIG = "litellm_config.yaml"


def _register_plugins(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name in _PLUGIN_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only "this module does not exist yet" is tolerated; a broken import inside it is not.
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        module.register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the proxy (emulated providers when no keys are set)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=4000)
    up.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG))
    up.add_argument("--log-json", action="store_true", help="JSON logs (default: readable)")
    up.add_argument(
        "--no-kafka",
        action="store_true",
        help="serve the proxy only: no Kafka broker and no consumers in this process",
    )
    _add_broker_mode(up)
    up.set_defaults(handler=_cmd_up)

    kafka = sub.add_parser(
        "kafka", help="run a Kafka broker alone (Apache Kafka when Java is present, else the mock)"
    )
    _add_broker_mode(kafka)
    kafka.add_argument(
        "--port", type=int, help="the mock broker's port (default: a free one; Kafka picks its own)"
    )
    kafka.add_argument("--partitions", type=int, default=4, help="for auto-created topics")
    kafka.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME[:PARTITIONS]",
        help="create a topic at start-up (repeatable)",
    )
    kafka.set_defaults(handler=_cmd_kafka)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate litellm_config.yaml, print routing")
    check.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG))
    check.set_defaults(handler=_cmd_config_check)

    _register_plugins(sub)
    return parser


def _add_broker_mode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kafka",
        choices=BROKER_MODES,
        default="auto",
        help="broker to start when no cluster is configured: auto (Apache Kafka when Java is "
        "present, else the embedded mock), real or mock",
    )
    parser.add_argument(
        "--kafka-data",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep Apache Kafka's data in DIR across runs (default: a temporary directory)",
    )


def _cmd_config_check(args: argparse.Namespace) -> int:
    from proxy.components import keys_line  # noqa: PLC0415 - keeps `--help` instant
    from proxy.settings import build_settings  # noqa: PLC0415

    try:
        settings = build_settings(args.config, os.environ, master_key="config-check-only")
        kafka = _kafka_settings(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    r = settings.resilience
    print(f"{args.config}: OK")
    print(
        f"resilience: attempts={r.attempts} backoff={r.backoff_base_s}s..{r.backoff_max_s}s "
        f"timeout={r.request_timeout_s}s max_retry_after={r.max_retry_after_s}s"
    )
    print(keys_line(settings.keys))
    if kafka is not None:
        t = kafka.topics
        print(
            f"kafka: {kafka.bootstrap_servers or 'a local broker (or KAFKA_BOOTSTRAP_SERVERS)'} "
            f"group={kafka.group_id} topics={t.requests.name}/{t.results.name}/"
            f"{t.status.name}/{t.dead_letters.name}"
        )
    print("routing (task -> providers in order):")
    print(settings.routing.describe())
    return 0


def _kafka_settings(config: Path) -> Any:
    """`gateway_settings.kafka`, validated; None when the consumers package is not installed."""
    try:
        from consumers.settings import load_kafka_settings  # noqa: PLC0415
    except ModuleNotFoundError:
        return None
    return load_kafka_settings(config)


def _cmd_up(args: argparse.Namespace) -> int:
    from core.logging import configure_logging  # noqa: PLC0415
    from emulators.kafka import KafkaEmulatorError  # noqa: PLC0415
    from services import ServiceError  # noqa: PLC0415

    configure_logging(json=args.log_json)
    import uvloop  # noqa: PLC0415

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_up(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except (ServiceError, KafkaEmulatorError) as exc:
        print(f"gateway: the Kafka broker did not start: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_kafka(args: argparse.Namespace) -> int:
    """Run the broker `--kafka` chooses until SIGINT/SIGTERM; print its address first."""
    from core.logging import configure_logging  # noqa: PLC0415
    from emulators.kafka import KafkaEmulatorError  # noqa: PLC0415
    from proxy.broker import LocalBroker, choose_broker  # noqa: PLC0415
    from services import ServiceError  # noqa: PLC0415

    configure_logging(json=False)
    # A broker run alone serves whoever connects, so a configured cluster plays no part.
    choice = choose_broker(args.kafka, None)
    if args.port is not None and choice.kind == "real":
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
        choice,
        default_partitions=args.partitions,
        mock_port=args.port or 0,
        data_dir=args.kafka_data,
    )
    try:
        try:
            broker.start()
            for spec in args.topic:
                name, _, partitions = spec.partition(":")
                broker.create_topic(name, int(partitions) if partitions else None)
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


async def _up(args: argparse.Namespace) -> None:
    from proxy.components import (  # noqa: PLC0415 - imports the proxy stack
        Component,
        EmbeddedEmulators,
        ProxyComponent,
        missing_providers,
        run_components,
    )

    environ = os.environ  # LiteLLM's own router resolves os.environ/ references too
    missing = missing_providers(environ)
    master_key = environ.get("LITELLM_MASTER_KEY") or ""
    generated = not master_key
    if generated:
        master_key = "sk-gw-" + secrets.token_urlsafe(24)
    emulators = EmbeddedEmulators(missing, environ)
    proxy = ProxyComponent(
        args.config, environ, host=args.host, port=args.port, master_key=master_key
    )
    # Started in this order, stopped in reverse. New components go here.
    components: list[Component] = [emulators, proxy]
    # What each says about itself under the banner, once everything has started.
    described: list[Callable[[], list[str]]] = [proxy.describe]
    if not args.no_kafka:
        from proxy.eventing import ConsumersComponent, KafkaComponent  # noqa: PLC0415

        kafka = KafkaComponent(args.config, environ, mode=args.kafka, data_dir=args.kafka_data)
        consumers = ConsumersComponent(kafka, proxy_url=lambda: proxy.url, master_key=master_key)
        components += [kafka, consumers]
        described += [kafka.describe, consumers.describe]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready() -> None:
        _print_banner(missing, emulators.urls, proxy.url, master_key if generated else None)
        for describe in described:
            for line in describe():
                print(line, flush=True)
        print("gateway: ready", flush=True)

    await run_components(components, stop, on_ready=ready)


def _print_banner(
    missing: Sequence[str], urls: dict[str, str], proxy_url: str, generated_key: str | None
) -> None:
    out: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    if len(missing) == 3:
        out("gateway: running on the EMBEDDED DEFAULT (emulated providers, no real API calls)")
    elif missing:
        out(f"gateway: real providers, EMULATED for missing keys: {', '.join(missing)}")
    else:
        out("gateway: real providers (keys found in the environment)")
    for provider, url in urls.items():
        out(f"  emulated {provider:<9} {url}")
    out(f"gateway: proxy listening on {proxy_url} (OpenAI-compatible: {proxy_url}/v1)")
    if generated_key:
        out(f"gateway: LITELLM_MASTER_KEY was not set; generated for this run: {generated_key}")


def main(argv: Sequence[str] | None = None) -> int:
    # Before anything imports litellm: otherwise its import fetches the cost map from the network.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None) or getattr(args, "func", None)
    if handler is None:
        parser.error("no command")
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
