"""The MediaPipe TFLite models converted to ONNX match their source framework."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx_support import WHEELS_DIR

from plugins.onnx.export.blazeface import SPEC as BLAZEFACE
from plugins.onnx.export.errors import ConversionError
from plugins.onnx.export.manifest import Manifest
from plugins.onnx.export.selfie import REFERENCE
from plugins.onnx.export.selfie import SPEC as SELFIE
from plugins.onnx.export.spec import ModelSpec
from plugins.onnx.export.tflite_check import fixed_images, recorded_difference
from plugins.onnx.export.tflite_reader import dequantise, read_tflite
from plugins.onnx.export.wheels import WheelCache


@pytest.fixture
def models_dir(onnx_models: Path) -> Path:
    return onnx_models


def _sources(spec: ModelSpec, tmp_path: Path) -> dict[str, Path]:
    cache = WheelCache(WHEELS_DIR)
    return {s.key: cache.extract(s, tmp_path) for s in spec.sources}


@pytest.mark.parametrize("spec", [BLAZEFACE, SELFIE], ids=lambda s: s.name)
def test_converted_model_matches_its_source_within_tolerance(
    spec: ModelSpec, models_dir: Path, tmp_path: Path
) -> None:
    """Rerunning the spec's check (LiteRT live, or MediaPipe's recorded outputs) stays in bounds."""
    error = spec.check(_sources(spec, tmp_path), models_dir / spec.name)
    assert 0.0 <= error <= spec.tolerance


@pytest.mark.parametrize("spec", [BLAZEFACE, SELFIE], ids=lambda s: s.name)
def test_manifest_records_the_measured_error_and_the_inputs(
    spec: ModelSpec, models_dir: Path
) -> None:
    """The manifest states the tolerance, the error reached and a batch axis on every tensor."""
    entry = Manifest.load(models_dir).models[spec.name]
    assert entry.max_error <= entry.tolerance == spec.tolerance
    assert [t.shape[0] for t in (*entry.inputs, *entry.outputs)] == ["batch"] * (
        len(entry.inputs) + len(entry.outputs)
    )


def test_blazeface_batch_of_three_equals_three_single_runs(models_dir: Path) -> None:
    """The dynamic batch axis changes no number: a stacked batch answers what singles do."""
    session = onnxruntime.InferenceSession(
        str(models_dir / BLAZEFACE.name / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    images = fixed_images(3, 192, 192).astype(np.float32) / np.float32(127.5) - 1
    batched = session.run(None, {"image": images})
    for i in range(3):
        single = session.run(None, {"image": images[i : i + 1]})
        for got, want in zip(batched, single, strict=True):
            np.testing.assert_allclose(got[i : i + 1], want, atol=1e-4)


def test_selfie_graph_has_the_custom_transposed_convolution(models_dir: Path) -> None:
    """MediaPipe's Convolution2DTransposeBias became one ONNX ConvTranspose with a bias."""
    model = onnx.load(str(models_dir / SELFIE.name / "model.onnx"))
    deconvs = [n for n in model.graph.node if n.op_type == "ConvTranspose"]
    assert len(deconvs) == 1
    assert len(deconvs[0].input) == 3


def test_recorded_check_detects_a_model_that_drifted(models_dir: Path, tmp_path: Path) -> None:
    """The selfie check measures the drift of outputs that differ from MediaPipe's."""
    with np.load(REFERENCE) as recorded:
        images, outputs = recorded["images"], recorded["outputs"]
    drifted = tmp_path / "drifted.npz"
    np.savez(drifted, images=images, outputs=np.clip(outputs + 0.25, 0, 2))
    error = recorded_difference(models_dir / SELFIE.name / "model.onnx", drifted)
    assert error > SELFIE.tolerance
    assert error == pytest.approx(0.25, abs=1e-3)


def test_reading_bytes_that_are_not_tflite_is_a_conversion_error() -> None:
    """A truncated or foreign file fails the build with the reader's error, not a crash."""
    with pytest.raises(ConversionError, match="not a TFLite flatbuffer"):
        read_tflite(b"not a tflite model")


def test_reader_folds_float16_weights_into_float32_constants(tmp_path: Path) -> None:
    """BlazeFace's float16 weights behind DEQUANTIZE arrive as float32 and no DEQUANTIZE op."""
    model = WheelCache(WHEELS_DIR).extract(BLAZEFACE.sources[0], tmp_path)
    graph = read_tflite(model.read_bytes())
    assert "DEQUANTIZE" not in {op.kind for op in graph.ops}
    weights = graph.tensors[graph.ops[0].inputs[1]].data
    assert weights is not None
    assert weights.dtype == np.float32


def test_dequantise_applies_per_channel_scales_along_the_quantised_axis() -> None:
    """int8 weights with one scale and zero point per output channel become float32."""
    data = np.array([[[[2]], [[4]]], [[[-2]], [[6]]]], np.int8)  # [2, 2, 1, 1], axis 0
    got = dequantise(data, np.array([0.5, 0.25]), np.array([0, 2]), axis=0)
    np.testing.assert_allclose(got.reshape(2, 2), [[1.0, 2.0], [-1.0, 1.0]])
    assert got.dtype == np.float32


def test_dequantise_widens_float16_and_refuses_integers_without_scale() -> None:
    """float16 constants are widened as they are; an integer constant needs a scale."""
    half = np.array([0.5, -1.25], np.float16)
    np.testing.assert_array_equal(dequantise(half, np.zeros(0), np.zeros(0), 0), [0.5, -1.25])
    with pytest.raises(ConversionError, match="no scale"):
        dequantise(np.array([1], np.int8), np.zeros(0), np.zeros(0), 0)
