"""TransNetV2 converted without torch, against the original's recorded outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information
from onnx_support import WHEELS_DIR

from plugins.onnx.export.transnetv2 import REFERENCE, SPEC

ROOT = Path(__file__).resolve().parents[2]


def test_transnetv2_builds_and_passes_its_check_with_torch_unimportable(tmp_path: Path) -> None:
    """The whole build of the model, catalog included, runs where `import torch` fails."""
    code = (
        "import json, sys\n"
        "sys.modules['torch'] = None  # any import of torch now raises ImportError\n"
        "from pathlib import Path\n"
        "from plugins.onnx.export import build_models\n"
        f"manifest = build_models(['transnetv2'], Path({str(tmp_path)!r}),"
        f" wheels_dir=Path({str(WHEELS_DIR)!r}))\n"
        "entry = manifest.models['transnetv2']\n"
        "tensors = lambda infos: [[t.name, t.dtype, t.shape] for t in infos]\n"
        "print(json.dumps({'max_error': entry.max_error, 'inputs': tensors(entry.inputs),"
        " 'outputs': tensors(entry.outputs)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    built = json.loads(done.stdout.strip().splitlines()[-1])
    assert built["max_error"] <= SPEC.tolerance
    assert built["inputs"] == [["frames", "uint8", ["batch", 100, 27, 48, 3]]]
    assert built["outputs"] == [
        ["single_frame", "float32", ["batch", 100, 1]],
        ["many_hot", "float32", ["batch", 100, 1]],
    ]


def test_each_recorded_window_alone_gives_what_the_original_gave(onnx_models: Path) -> None:
    """Run one window at a time, each window's probabilities match the recorded ones."""
    session = ort.InferenceSession(
        str(onnx_models / SPEC.name / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    with np.load(REFERENCE) as recorded:
        frames, single, many = recorded["frames"], recorded["single_frame"], recorded["many_hot"]
    assert frames.shape == (2, 100, 27, 48, 3)
    for index in range(len(frames)):
        ours = session.run(["single_frame", "many_hot"], {"frames": frames[index : index + 1]})
        assert float(np.max(np.abs(ours[0] - single[index : index + 1]))) <= SPEC.tolerance
        assert float(np.max(np.abs(ours[1] - many[index : index + 1]))) <= SPEC.tolerance
    # The recorded windows hold real cuts, so matching them is not matching a flat output.
    assert float(single.max()) > 0.5 and float(single.min()) < 0.01
