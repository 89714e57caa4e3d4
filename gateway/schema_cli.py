"""`gateway schema --write | --check`: the published JSON Schema of every kind's events.

Why in the composition root: `schemas` generates the built-in events but may not import the
handler packages that declare the other kinds; this command joins the kinds the default
config's handlers serve and the product's kind modules (`gateway.kinds`) into the one
published file, schemas/events.schema.json, and fails in CI when that file is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.kinds import PRODUCT_KIND_MODULES, published_kinds
from schemas.jsonschema import SCHEMA_PATH, generate, render

__all__ = ["document", "register", "render_document"]

DEFAULT_CONFIG = Path("litellm_config.yaml")


def document(config: Path | None = DEFAULT_CONFIG) -> dict[str, Any]:
    """The whole published schema: the built-in events and every published kind's."""
    kinds = published_kinds(config if config is not None and config.exists() else None)
    # By name: the file must not change when handlers are reordered in the config.
    kinds.sort(key=lambda k: k.name)
    return generate(
        requests=[k.request for k in kinds],
        results=[t for k in kinds for t in (k.succeeded, k.failed)],
    )


def render_document(config: Path | None = DEFAULT_CONFIG) -> str:
    """The text schemas/events.schema.json must hold."""
    return render(document(config))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schema = sub.add_parser(
        "schema", help="write or check schemas/events.schema.json (every kind's events)"
    )
    mode = schema.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the schema file")
    mode.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    schema.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="the config whose handlers' kinds are published (besides the product's: "
        + ", ".join(PRODUCT_KIND_MODULES)
        + ")",
    )
    schema.add_argument("--path", type=Path, default=SCHEMA_PATH, help=argparse.SUPPRESS)
    schema.set_defaults(handler=_cmd_schema)


def _cmd_schema(args: argparse.Namespace) -> int:
    from core.config import ConfigError  # noqa: PLC0415

    try:
        expected = render_document(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    path: Path = args.path
    if args.write:
        path.write_text(expected, encoding="utf-8")
        print(f"wrote {path}")
        return 0
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current != expected:
        print(f"{path} is stale: run `gateway schema --write`", file=sys.stderr)
        return 1
    return 0
