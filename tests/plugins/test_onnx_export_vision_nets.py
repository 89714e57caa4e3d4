"""MobileNetV2 and MTCNN's three networks converted without torch, against recorded outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information
import pytest
from onnx_support import WHEELS_DIR

from plugins.onnx.export._mtcnn_graph import rnet
from plugins.onnx.export._pth import load_state_dict
from plugins.onnx.export.errors import ConversionError
from plugins.onnx.export.mobilenetv2 import SPEC as MOBILENETV2
from plugins.onnx.export.mtcnn import ONET, PNET, RNET, scaled
from plugins.onnx.export.wheels import WheelCache

ROOT = Path(__file__).resolve().parents[2]
SPECS = {spec.name: spec for spec in (MOBILENETV2, PNET, RNET, ONET)}
# What serving reads: names, dtypes and (symbolic = dynamic) shapes, as the torch export had.
CONTRACT = {
    "mobilenetv2": (
        [["pixel_values", "float32", ["batch", 3, 224, 224]]],
        [["features", "float32", ["batch", 1280]]],
    ),
    "mtcnn-pnet": (
        [["image", "float32", ["batch", 3, "height", "width"]]],
        [
            ["regression", "float32", ["batch", 4, "cells_y", "cells_x"]],
            ["probability", "float32", ["batch", 2, "cells_y", "cells_x"]],
        ],
    ),
    "mtcnn-rnet": (
        [["image", "float32", ["batch", 3, 24, 24]]],
        [["regression", "float32", ["batch", 4]], ["probability", "float32", ["batch", 2]]],
    ),
    "mtcnn-onet": (
        [["image", "float32", ["batch", 3, 48, 48]]],
        [
            ["regression", "float32", ["batch", 4]],
            ["landmarks", "float32", ["batch", 10]],
            ["probability", "float32", ["batch", 2]],
        ],
    ),
}


def test_the_four_models_build_and_pass_their_checks_with_torch_unimportable(
    tmp_path: Path,
) -> None:
    """The build of MobileNetV2 and the MTCNN nets, catalog included, runs where torch fails."""
    code = (
        "import json, sys\n"
        "sys.modules['torch'] = None  # any import of torch now raises ImportError\n"
        "from pathlib import Path\n"
        "from plugins.onnx.export import build_models\n"
        f"manifest = build_models({sorted(SPECS)!r}, Path({str(tmp_path)!r}),"
        f" wheels_dir=Path({str(WHEELS_DIR)!r}))\n"
        "print(json.dumps({name: {'max_error': e.max_error, 'revision': e.revision,"
        " 'inputs': [[t.name, t.dtype, t.shape] for t in e.inputs],"
        " 'outputs': [[t.name, t.dtype, t.shape] for t in e.outputs]}"
        " for name, e in manifest.models.items()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    built = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(built) == sorted(SPECS)
    for name, entry in built.items():
        assert entry["max_error"] <= SPECS[name].tolerance
        assert entry["revision"] == SPECS[name].revision
        assert (entry["inputs"], entry["outputs"]) == CONTRACT[name]


def test_every_module_of_the_onnx_package_imports_with_torch_unimportable() -> None:
    """No module of plugins.onnx, the export included, needs torch to import."""
    code = (
        "import importlib, pkgutil, sys\n"
        "sys.modules['torch'] = None\n"
        "import plugins.onnx as package\n"
        "names = [m.name for m in pkgutil.walk_packages(package.__path__, 'plugins.onnx.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names), 'plugins.onnx.export.catalog' in names)\n"
    )
    # LiteLLM (imported by the handler) would otherwise fetch its cost map from the network.
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    count, has_catalog = done.stdout.split()
    assert int(count) > 20 and has_catalog == "True"


def test_pnet_pools_with_ceil_mode_on_any_image_size(onnx_models: Path) -> None:
    """An odd-sized input keeps its partial pooling window, as torch's ceil_mode does."""
    session = ort.InferenceSession(
        str(onnx_models / PNET.name / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    pixels = np.random.default_rng(3).integers(0, 256, (2, 3, 13, 12)).astype(np.uint8)
    regression, probability = session.run(None, {"image": scaled(pixels)})
    # 13 rows: conv 11, pool ceil(11 / 2) = 6 (floor would give 5), two convs: 2 cells.
    assert regression.shape == (2, 4, 2, 1)
    assert probability.shape == (2, 2, 2, 1)
    np.testing.assert_allclose(probability.sum(axis=1), 1.0, atol=1e-6)


def test_each_item_of_a_batch_gives_what_it_gives_alone(onnx_models: Path) -> None:
    """Batched ONet rows equal the same crops run one at a time (the batch axis is dynamic)."""
    session = ort.InferenceSession(
        str(onnx_models / ONET.name / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    crops = scaled(np.random.default_rng(5).integers(0, 256, (4, 3, 48, 48)).astype(np.uint8))
    batched = session.run(None, {"image": crops})
    for index in range(len(crops)):
        alone = session.run(None, {"image": crops[index : index + 1]})
        for got, want in zip(alone, batched, strict=True):
            np.testing.assert_allclose(got[0], want[index], atol=1e-6)


def test_a_checkpoint_with_tensors_the_graph_lacks_is_refused(tmp_path: Path) -> None:
    """An extra tensor means another architecture: the converter refuses, as strict loading."""
    (source,) = RNET.sources
    state = load_state_dict(WheelCache(WHEELS_DIR).extract(source, tmp_path))
    rnet(state)  # the genuine checkpoint converts
    state["dense6.weight"] = np.zeros((4, 128), dtype=np.float32)
    with pytest.raises(ConversionError, match=r"dense6\.weight"):
        rnet(state)
