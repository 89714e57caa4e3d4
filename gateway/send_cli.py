"""The `gateway send` command line: any kind's request from flags, files and inputs.

    gateway send --list                                   # the kinds and their fields
    gateway send styling.requested --set item="red linen shirt" --set outfits=2 --wait
    gateway send video.summary.requested --input video=clip.mp4 --set prompt="Summarise" --wait
    gateway send caption.requested --task captioning --file event.json --wait
    gateway send --task captioning --text "Describe a red linen shirt" --wait   # a completion

Why one command for every kind: the kinds come from the configured handlers (`gateway.kinds`),
so a kind added to litellm_config.yaml can be sent, listed and checked before sending without
touching this file. Fields are validated against the kind's request Struct before anything
reaches the broker; a bad field is refused naming it (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumers.kinds import EventKind
from gateway.kinds import ServedKind, configured_kinds, product_kinds

if TYPE_CHECKING:
    from artifacts import ArtifactStore
    from gateway.send_fields import Upload

__all__ = ["register"]

DEFAULT_CONFIG = Path("litellm_config.yaml")

# The codes `gateway.send` returns, written out here so that `--help` imports no Kafka client.
_EXIT_CODES = """exit codes:
  0  sent (with --wait: a success result)
  1  a failure result (--wait)
  2  a bad kind, field or config: nothing sent
  3  no result within --timeout (--wait)
  4  the Kafka broker could not be reached (the line names the address)"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = sub.add_parser(
        "send",
        help="publish a request event of any kind (see --list); --wait shows progress and result",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    send.add_argument(
        "kind", nargs="?", help="the request kind, e.g. styling.requested (default: a completion)"
    )
    send.add_argument(
        "--config", type=Path, help="litellm_config.yaml holding gateway_settings.kafka"
    )
    send.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides the config)")
    send.add_argument("--list", action="store_true", help="list the kinds and their fields")
    send.add_argument("--example", action="store_true", help="print a minimal event of the kind")
    send.add_argument("--task", help="the request's task (default: the kind's configured one)")
    send.add_argument("--text", help="completion shortcut: the user message")
    send.add_argument(
        "--image", action="append", default=[], type=Path, help="completion shortcut: an image"
    )
    send.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
        help="a field (text as given for text fields, else JSON; a.b=v nests); repeatable",
    )  # fmt: skip
    send.add_argument(
        "--json", dest="json_fields", action="append", default=[], metavar="JSON",
        help="fields as a JSON object; repeatable",
    )  # fmt: skip
    send.add_argument(
        "--file", dest="files", action="append", default=[], type=Path, metavar="EVENT.json",
        help="fields from a JSON file; repeatable",
    )  # fmt: skip
    send.add_argument(
        "--input", dest="inputs", action="append", default=[], metavar="FIELD=FILE",
        help="a local file for a media field: uploaded to the configured artifact store "
        "(or inlined as a data: URL for image URL fields); repeat for list fields",
    )  # fmt: skip
    send.add_argument("--subject", help="ordering key (default: a new id)")
    send.add_argument("--wait", action="store_true", help="wait for progress and the result")
    send.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")
    send.set_defaults(handler=_cmd_send)


def _config_of(args: argparse.Namespace) -> Path | None:
    """The config that names the handlers (and the artifact store): --config, else the
    default litellm_config.yaml when present, as `gateway up` reads."""
    config: Path | None = args.config
    if config is None and DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    return config


def _known(config: Path | None) -> tuple[list[ServedKind], dict[str, EventKind[Any, Any]]]:
    """The configured kinds, and every kind that can be sent (those plus the product's)."""
    from consumers.settings import load_kafka_settings  # noqa: PLC0415

    served = configured_kinds(load_kafka_settings(config))
    everything: dict[str, EventKind[Any, Any]] = {s.name: s.kind for s in served}
    for kind in product_kinds():
        everything.setdefault(kind.name, kind)
    return served, everything


def list_text(served: Sequence[ServedKind], everything: dict[str, EventKind[Any, Any]]) -> str:
    """What `--list` prints: each kind, its tasks, and its fields (* required)."""
    from gateway.send_fields import fields_of  # noqa: PLC0415

    tasks = {s.name: ", ".join(s.tasks) for s in served}
    lines = []
    for name, kind in everything.items():
        lines.append(f"{name}  tasks: {tasks.get(name) or '(no configured handler)'}")
        for field in fields_of(kind.request):
            mark = "*" if field.required else " "
            how = {"artifact": "  (--input: uploaded)", "data-url": "  (--input: inlined)"}
            lines.append(f"  {mark} {field.name}: {field.type}{how.get(field.file or '', '')}")
    return "\n".join(lines)


def _task_of(args: argparse.Namespace, served: Sequence[ServedKind], name: str) -> str | None:
    if args.task:
        return str(args.task)
    tasks = [t for s in served if s.name == name for t in s.tasks if t != "*"]
    return tasks[0] if len(tasks) == 1 else None


def _documents(args: argparse.Namespace) -> list[dict[str, Any]]:
    from gateway.send_fields import EventFieldError  # noqa: PLC0415

    found: list[dict[str, Any]] = []
    sources = [(str(p), p.read_text(encoding="utf-8")) for p in args.files]
    sources += [("--json", text) for text in args.json_fields]
    for where, text in sources:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EventFieldError(f"{where}: not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise EventFieldError(f"{where}: must hold a JSON object of fields")
        found.append(value)
    return found


def _cmd_send(args: argparse.Namespace) -> int:
    from core.config import ConfigError  # noqa: PLC0415

    if args.kind is None and not args.list:
        return _cmd_send_completion(args)
    config = _config_of(args)
    try:
        served, everything = _known(config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print(list_text(served, everything))
        return 0
    kind = everything.get(args.kind)
    if kind is None:
        print(f"unknown kind {args.kind!r}; known: {', '.join(everything)}", file=sys.stderr)
        return 2
    if args.example:
        from gateway.send_fields import example_fields  # noqa: PLC0415

        print(json.dumps(example_fields(kind.request), indent=2))
        return 0
    return _send_kind(args, config, served, kind)


def _send_kind(
    args: argparse.Namespace,
    config: Path | None,
    served: Sequence[ServedKind],
    kind: EventKind[Any, Any],
) -> int:
    from gateway.cli import _cluster_settings, _run  # noqa: PLC0415 - the shared runner
    from gateway.send import new_envelope, send_event  # noqa: PLC0415
    from gateway.send_fields import EventFieldError, build_event  # noqa: PLC0415

    if args.text or args.image:
        print("--text and --image belong to the completion shortcut (no kind)", file=sys.stderr)
        return 2
    task = _task_of(args, served, kind.name)
    envelope = new_envelope(task or "-", args.subject)
    if task is None:
        del envelope["task"]  # the kind's own default, or a missing-field error naming it
    settings = _cluster_settings(args, "send")
    if settings is None:
        return 2
    servers = settings.kafka.bootstrap_servers
    assert servers is not None  # _cluster_settings checked it

    async def run() -> int:
        try:
            event = await build_event(
                kind.request,
                envelope,
                documents=_documents(args),
                sets=args.sets,
                inputs=args.inputs,
                upload=_uploader(config),
            )
        except EventFieldError as exc:
            print(f"not sent: {exc}", file=sys.stderr)
            return 2
        return await send_event(
            settings.kafka,
            servers,
            event,
            kind,
            wait=args.wait,
            timeout_s=args.timeout,
            redactor=settings.redactor,
        )

    return _run(run)


def _uploader(config: Path | None) -> Upload:
    """Puts a file into the artifact store `config` names (opened on the first upload, so a
    send without files needs no store)."""
    opened: list[ArtifactStore] = []

    async def upload(data: bytes, content_type: str) -> str:
        from artifacts.settings import load_artifact_settings, open_store  # noqa: PLC0415

        if not opened:
            opened.append(open_store(load_artifact_settings(config or DEFAULT_CONFIG)))
        ref = await opened[0].put(data, content_type)
        return ref.id

    return upload


def _cmd_send_completion(args: argparse.Namespace) -> int:
    from gateway.cli import _cluster_settings, _run  # noqa: PLC0415 - the shared runner
    from gateway.send import SendRequest, send  # noqa: PLC0415

    if not args.task or args.text is None:
        print("send: give a kind (see --list), or --task and --text for a completion",
              file=sys.stderr)  # fmt: skip
        return 2
    settings = _cluster_settings(args, "send")
    if settings is None:
        return 2
    servers = settings.kafka.bootstrap_servers
    assert servers is not None  # _cluster_settings checked it
    request = SendRequest(
        task=args.task,
        text=args.text,
        images=args.image,
        subject=args.subject,
        wait=args.wait,
        timeout_s=args.timeout,
    )
    return _run(lambda: send(settings.kafka, servers, request, redactor=settings.redactor))
