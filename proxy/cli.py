"""The `gateway` command: `up`, `config check`, and the subcommands other packages register.

Why it exists: one entry point starts everything a developer or a deployment needs. Without
provider keys `gateway up` runs on the EMBEDDED DEFAULT: provider emulators started in-process,
so the whole product works offline; with keys it uses the real providers.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.config import ConfigError

__all__ = ["build_parser", "main"]

# Modules that add subcommands through `register(subparsers)`; absent ones are skipped.
_PLUGIN_MODULES = ("emulators.cli", "emulators.kafka.cli", "consumers.cli")
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
    up.set_defaults(handler=_cmd_up)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate litellm_config.yaml, print routing")
    check.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG))
    check.set_defaults(handler=_cmd_config_check)

    _register_plugins(sub)
    return parser


def _cmd_config_check(args: argparse.Namespace) -> int:
    from proxy.settings import build_settings  # noqa: PLC0415 - keeps `--help` instant

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
    print(f"keys: {'postgresql store' if settings.keys.database_url else 'environment only'}")
    if kafka is not None:
        t = kafka.topics
        print(
            f"kafka: {kafka.bootstrap_servers or 'embedded (or KAFKA_BOOTSTRAP_SERVERS)'} "
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

    configure_logging(json=args.log_json)
    import uvloop  # noqa: PLC0415

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_up(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
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
    kafka = None
    if not args.no_kafka:
        from proxy.eventing import ConsumersComponent, KafkaComponent  # noqa: PLC0415

        kafka = KafkaComponent(args.config, environ)
        consumers = ConsumersComponent(kafka, proxy_url=lambda: proxy.url, master_key=master_key)
        components += [kafka, consumers]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready() -> None:
        _print_banner(missing, emulators.urls, proxy.url, master_key if generated else None)
        if kafka is not None:
            where = "EMBEDDED broker" if kafka.embedded else "configured cluster"
            topics = kafka.settings.topics
            print(
                f"gateway: kafka {where} at {kafka.bootstrap_servers}; consumers read "
                f"{topics.requests.name}, write {topics.results.name} / {topics.status.name} / "
                f"{topics.dead_letters.name}",
                flush=True,
            )
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
