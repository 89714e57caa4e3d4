"""The `gateway` command: `up`, `consume`, `send`, `topics ensure`, `kafka`, `emulators`,
`config check` and `schema`.

Why it exists: one entry point starts everything a developer or a deployment needs. Without
provider keys `gateway up` runs on the EMBEDDED DEFAULT: provider emulators started in-process,
so the whole product works offline; with keys it uses the real providers. Without a configured
Kafka cluster it starts a broker (`gateway.broker` says which); `gateway kafka` runs one alone.
Each command reads the environment once, into one `gateway.settings.StackSettings`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.config import ConfigError
from gateway.broker import BROKER_MODES
from gateway.settings import Flags, StackSettings, build_stack_settings

__all__ = ["build_parser", "main"]

DEFAULT_CONFIG = "litellm_config.yaml"


def build_parser() -> argparse.ArgumentParser:
    from emulators.cli import register as register_emulators  # noqa: PLC0415
    from gateway.keys_cli import register as register_keys  # noqa: PLC0415
    from gateway.models_cli import register as register_models  # noqa: PLC0415
    from gateway.schema_cli import register as register_schema  # noqa: PLC0415
    from gateway.send_cli import register as register_send  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    _add_up(sub)

    consume = sub.add_parser("consume", help="run a request consumer until SIGTERM")
    _add_common(consume)
    consume.add_argument("--proxy-url", help="base URL of the proxy (overrides the config)")
    consume.add_argument("--group", help="consumer group id (overrides the config)")
    consume.add_argument("--metrics-port", type=int, help="serve Prometheus metrics here")
    _add_broker_mode(consume)
    _add_handler(consume)
    consume.set_defaults(handler=_cmd_consume)

    topics = sub.add_parser("topics", help="manage the configured topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    ensure = topics_sub.add_parser("ensure", help="create missing topics (idempotent)")
    _add_common(ensure)
    ensure.set_defaults(handler=_cmd_topics_ensure)

    register_send(sub)

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

    register_emulators(sub)
    register_keys(sub)
    register_models(sub)
    register_schema(sub)
    return parser


def _add_up(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser("up", help="start the proxy (emulated providers when no keys are set)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=4000)
    up.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG))
    up.add_argument("--log-json", action="store_true", help="JSON logs (default: readable)")
    up.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="proxy processes serving the port (default: GATEWAY_WORKERS, else 1)",
    )
    up.add_argument(
        "--no-kafka",
        action="store_true",
        help="serve the proxy only: no Kafka broker and no consumers in this process",
    )
    _add_broker_mode(up)
    _add_handler(up)
    up.set_defaults(handler=_cmd_up)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="litellm_config.yaml holding gateway_settings.kafka"
    )
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides the config)")


def _add_handler(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--handler",
        dest="handler_factory",
        metavar="MODULE:NAME",
        help="handler factory serving every task instead of the proxy",
    )
    parser.add_argument(
        "--handler-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument for the handler factory (repeatable)",
    )


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


def _settings(args: argparse.Namespace, *, generate_master_key: bool = False) -> StackSettings:
    """The command's one settings object: the config file, the environment, the flags."""
    options: dict[str, str] = {}
    for option in getattr(args, "handler_option", []):
        key, sep, value = option.partition("=")
        if not sep:
            raise ConfigError(f"--handler-option {option!r} must look like KEY=VALUE")
        options[key] = value
    flags = Flags(
        bootstrap=getattr(args, "bootstrap", None),
        group=getattr(args, "group", None),
        proxy_url=getattr(args, "proxy_url", None),
        handler=getattr(args, "handler_factory", None),
        handler_options=options,
        metrics_port=getattr(args, "metrics_port", None),
        broker_mode=getattr(args, "kafka", "auto"),
        kafka_data=getattr(args, "kafka_data", None),
        with_kafka=not getattr(args, "no_kafka", False),
        workers=getattr(args, "workers", None),
        log_json=getattr(args, "log_json", False),
    )
    if args.command == "up":  # `gateway kafka --port` is the mock broker's, not the proxy's
        flags = replace(flags, host=args.host, port=args.port)
    # The only read of the environment: everything below receives the settings.
    config: Path | None = getattr(args, "config", None)  # `gateway kafka` reads no config
    return build_stack_settings(config, os.environ, flags, generate_master_key=generate_master_key)


def _run(coroutine: Callable[[], Coroutine[Any, Any, int | None]]) -> int:
    """Run `coroutine` on uvloop and map start-up failures to exit codes (2: configuration)."""
    import uvloop  # noqa: PLC0415 - keeps `--help` instant

    from consumers.errors import ConfigurationError, ConsumerError  # noqa: PLC0415
    from emulators.kafka import KafkaEmulatorError  # noqa: PLC0415
    from gateway.workers import WorkerError  # noqa: PLC0415
    from services import ServiceError  # noqa: PLC0415

    try:
        # uvloop: the consume loop's per-event scheduling costs markedly less on it.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine()) or 0
    except (ConfigError, ConfigurationError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except ConsumerError as exc:
        # Start-up failures (a broker refusing, Redis misconfigured): one line, no traceback.
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except (ServiceError, KafkaEmulatorError) as exc:
        print(f"gateway: the Kafka broker did not start: {exc}", file=sys.stderr)
        return 1
    except WorkerError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _cmd_up(args: argparse.Namespace) -> int:
    from core.logging import configure_logging  # noqa: PLC0415
    from gateway.stack import serve_up  # noqa: PLC0415 - imports the whole stack

    try:
        settings = _settings(args, generate_master_key=True)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(json=args.log_json, redactor=settings.redactor)
    return _run(lambda: serve_up(settings))


def _cmd_consume(args: argparse.Namespace) -> int:
    from core.logging import configure_logging  # noqa: PLC0415
    from gateway.stack import serve_consumers  # noqa: PLC0415

    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(json=not sys.stderr.isatty(), redactor=settings.redactor)
    return _run(lambda: serve_consumers(settings))


def _cmd_topics_ensure(args: argparse.Namespace) -> int:
    from consumers.topics import ensure_topics  # noqa: PLC0415

    settings = _cluster_settings(args, "topics ensure")
    if settings is None:
        return 2
    kafka = settings.kafka
    servers = kafka.bootstrap_servers
    assert servers is not None  # _cluster_settings checked it

    async def ensure() -> int:
        created = await ensure_topics(kafka, servers)
        for topic in kafka.topics.all():
            state = "created" if topic.name in created else "exists"
            print(f"{topic.name} partitions={topic.partitions} {state}")
        return 0

    return _run(ensure)


def _cluster_settings(args: argparse.Namespace, command: str) -> StackSettings | None:
    """The settings of a command that needs a running cluster, or None after saying why."""
    from core.logging import configure_logging  # noqa: PLC0415

    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return None
    configure_logging(json=not sys.stderr.isatty(), redactor=settings.redactor)
    if settings.kafka.bootstrap_servers is None:
        print(
            f"{command} needs --bootstrap, KAFKA_BOOTSTRAP_SERVERS or kafka.bootstrap_servers",
            file=sys.stderr,
        )
        return None
    return settings


def _cmd_kafka(args: argparse.Namespace) -> int:
    from core.logging import configure_logging  # noqa: PLC0415
    from gateway.stack import run_broker  # noqa: PLC0415

    settings = _settings(args)
    configure_logging(json=False, redactor=settings.redactor)
    return run_broker(settings, partitions=args.partitions, port=args.port, topics=args.topic)


def _cmd_config_check(args: argparse.Namespace) -> int:
    from gateway.components import keys_line  # noqa: PLC0415 - keeps `--help` instant
    from proxy.settings import build_settings  # noqa: PLC0415

    try:
        settings = _settings(args)
        proxy = build_settings(args.config, settings.environ, master_key="config-check-only")
        from proxy.media import check_media_config  # noqa: PLC0415 - loads the media plugins

        check_media_config(str(args.config), proxy.routing)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    r = proxy.resilience
    print(f"{args.config}: OK")
    print(
        f"resilience: attempts={r.attempts} backoff={r.backoff_base_s}s..{r.backoff_max_s}s "
        f"timeout={r.request_timeout_s}s max_retry_after={r.max_retry_after_s}s"
    )
    print(keys_line(proxy.keys))
    kafka = settings.kafka
    t = kafka.topics
    print(
        f"kafka: {kafka.bootstrap_servers or 'a local broker (none configured)'} "
        f"group={kafka.group_id} topics={t.requests.name}/{t.results.name}/"
        f"{t.status.name}/{t.dead_letters.name}"
    )
    print("routing (task -> providers in order):")
    print(proxy.routing.describe())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # LiteLLM reads these while importing: otherwise its import fetches its cost map and beta
    # header table from the network. They configure LiteLLM, not one of our components.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
