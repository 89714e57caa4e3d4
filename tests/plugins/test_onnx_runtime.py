"""The model runtime: sessions load and run off the event loop, onnxruntime's failures become
OnnxErrors, and a model that was not built says how to build it."""

from __future__ import annotations

import inspect
import os
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import structlog.testing
from onnx_tiny import image_model
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from plugins.onnx.errors import (
    OnnxError,
    OnnxInferenceError,
    OnnxModelMissing,
    OnnxModelUnavailable,
)
from plugins.onnx.session import ModelSession, SessionOptions, cpu_threads, onnxruntime_errors


async def test_a_model_runs_in_its_own_thread_on_the_cpu(tmp_path: Path) -> None:
    """A loaded session runs on the CPU provider (no CUDA here), in a thread of its own."""
    image_model(tmp_path / "tiny")
    session = ModelSession("tiny", tmp_path / "tiny", SessionOptions(device="cpu"))
    await session.start()
    seen: list[str] = []
    original = session.run_sync

    def spy(*args: object) -> list[np.ndarray]:
        seen.append(threading.current_thread().name)
        return original(*args)  # type: ignore[arg-type]

    session.run_sync = spy  # type: ignore[method-assign]
    try:
        mean, peak = await session.run({"image": np.full((2, 4, 4, 3), 0.5, np.float32)})
    finally:
        session.close()
    assert mean.shape == (2, 1) and float(mean[0, 0]) == pytest.approx(0.5)
    assert peak.shape == (2, 1)
    assert seen and seen[0].startswith("onnx-tiny") and seen[0] != threading.main_thread().name


def test_the_cpu_provider_is_chosen_and_threads_follow_the_usable_cores(tmp_path: Path) -> None:
    """On device 'cpu' the session uses the CPU, with one thread per usable core."""
    image_model(tmp_path / "tiny")
    session = ModelSession("tiny", tmp_path / "tiny", SessionOptions(device="cpu"))
    session.load()
    try:
        assert session.provider == "CPUExecutionProvider"
        assert [i.name for i in session.inputs] == ["image"]
        assert session.inputs[0].shape[0] == "batch"
    finally:
        session.close()
    assert cpu_threads() == len(os.sched_getaffinity(0))


def test_asking_for_cuda_runs_on_cuda_or_names_the_gpu_extra(tmp_path: Path) -> None:
    """device 'cuda' runs on CUDA with onnxruntime-gpu; without it the error names the extra."""
    image_model(tmp_path / "tiny")
    session = ModelSession("tiny", tmp_path / "tiny", SessionOptions(device="cuda"))
    if "CUDAExecutionProvider" in ort.get_available_providers():
        session.load()
        assert session.provider == "CUDAExecutionProvider"
        session.close()
        return
    with pytest.raises(OnnxModelUnavailable, match="onnxruntime-gpu"):
        session.load()


def test_a_model_not_built_names_the_build_command(tmp_path: Path) -> None:
    """A missing model.onnx is OnnxModelMissing (503, not retriable) naming the build command."""
    with pytest.raises(OnnxModelMissing, match="gateway models build") as missing:
        ModelSession("minilm-l6-v2", tmp_path / "minilm-l6-v2").load()
    assert missing.value.status_code == 503 and not missing.value.retriable


def test_a_corrupt_model_file_is_unavailable(tmp_path: Path) -> None:
    """A model.onnx onnxruntime cannot parse is OnnxModelUnavailable, not an onnxruntime error."""
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(OnnxModelUnavailable, match="cannot be loaded"):
        ModelSession("broken", tmp_path / "broken").load()


async def test_a_run_with_wrong_inputs_is_an_inference_error(tmp_path: Path) -> None:
    """Feeding a tensor of the wrong rank is OnnxInferenceError (500), and the session serves on."""
    image_model(tmp_path / "tiny")
    session = ModelSession("tiny", tmp_path / "tiny")
    await session.start()
    try:
        with pytest.raises(OnnxInferenceError) as failed:
            await session.run({"image": np.zeros((4, 3), np.float32)})
        assert failed.value.status_code == 500
        outputs = await session.run({"image": np.zeros((1, 4, 4, 3), np.float32)})
    finally:
        session.close()
    assert outputs[0].shape == (1, 1)


_ORT_ERRORS = [
    obj
    for _, obj in inspect.getmembers(ort_state, inspect.isclass)
    if issubclass(obj, Exception) and obj.__module__.startswith("onnxruntime")
]


@pytest.mark.parametrize("loading", [True, False])
@pytest.mark.parametrize("kind", _ORT_ERRORS, ids=lambda k: k.__name__)
def test_every_onnxruntime_error_is_translated(kind: type[Exception], loading: bool) -> None:
    """Each exception class onnxruntime defines leaves the translation point as an OnnxError."""
    expected = OnnxModelUnavailable if loading else OnnxInferenceError
    with pytest.raises(expected) as translated, onnxruntime_errors("tiny", loading=loading):
        raise kind("boom")
    assert isinstance(translated.value, OnnxError)
    assert isinstance(translated.value.__cause__, kind)


def test_errors_that_are_not_onnxruntimes_pass_through() -> None:
    """A bug of ours (a KeyError) is not disguised as a model error."""
    with pytest.raises(KeyError), onnxruntime_errors("tiny", loading=False):
        raise KeyError("input_ids")


def test_the_error_classes_say_what_to_answer() -> None:
    """Each error class carries its HTTP status and whether trying again may pass."""
    from plugins.onnx import errors  # noqa: PLC0415 - the module under test, read whole

    expected = {
        "OnnxError": (500, False),
        "OnnxBadInput": (400, False),
        "OnnxOverloaded": (429, True),
        "OnnxStopped": (503, True),
        "OnnxModelUnavailable": (503, False),
        "OnnxModelMissing": (503, False),
        "OnnxInferenceError": (500, False),
    }
    assert set(errors.__all__) == set(expected)
    for name, (status, retriable) in expected.items():
        kind = getattr(errors, name)
        assert (kind.status_code, kind.retriable) == (status, retriable), name


def test_loading_logs_the_provider_the_model_really_got(tmp_path: Path) -> None:
    """The load is logged with the execution provider onnxruntime chose (a silent CUDA fallback
    shows as the CPU's)."""
    image_model(tmp_path / "tiny")
    session = ModelSession("tiny", tmp_path / "tiny", SessionOptions(device="cpu"))
    with structlog.testing.capture_logs() as logs:
        session.load()
    session.close()
    (loaded,) = [entry for entry in logs if entry["event"] == "onnx_model_loaded"]
    assert loaded["model"] == "tiny" and loaded["provider"] == "CPUExecutionProvider"
