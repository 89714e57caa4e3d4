"""One onnxruntime InferenceSession per model, run off the event loop, its errors translated.

Why it exists: every self-hosted model is loaded and run the same way: the CUDA provider when
the installed onnxruntime offers it (onnxruntime-gpu, after `preload_dlls()` so the CUDA and
cuDNN libraries of the pip wheels are found), else the CPU with thread counts chosen for the
cores this process may use. A run blocks for milliseconds, so it happens in a thread of the
session's own (onnxruntime releases the GIL), never on the event loop. onnxruntime's exceptions
become `OnnxError`s here and nowhere else.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information
import structlog

from plugins.onnx.errors import (
    OnnxError,
    OnnxInferenceError,
    OnnxModelMissing,
    OnnxModelUnavailable,
)

__all__ = ["ModelSession", "SessionOptions", "TensorInfo", "cpu_threads", "onnxruntime_errors"]

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
_MODEL_FILE = "model.onnx"


def cpu_threads() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionOptions:
    """How one model is run."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Threads inside one operator (a matmul); 0: every core this process may use.
    intra_op_threads: int = 0
    # The graphs served are chains of operators: running branches in parallel gains nothing
    # and its threads would fight the intra-op ones for the same cores.
    inter_op_threads: int = 1


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """A model input or output as onnxruntime reports it (dynamic dimensions as names)."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str  # onnxruntime's type string, e.g. "tensor(float)"


@contextmanager
def onnxruntime_errors(model: str, *, loading: bool) -> Iterator[None]:
    """Re-raise onnxruntime's failures inside the block as OnnxErrors naming `model`."""
    try:
        yield
    except OnnxError:
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        kind = OnnxModelUnavailable if loading else OnnxInferenceError
        what = "cannot be loaded" if loading else "failed"
        raise kind(f"model {model!r} {what}: {type(exc).__name__}: {exc}"[:500]) from exc


def _providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device != "cpu" and _CUDA in available:
        return [_CUDA, _CPU]
    if device == "cuda":
        raise OnnxModelUnavailable(
            "device 'cuda' asked for, but the installed onnxruntime has no CUDA provider "
            "(install the gpu extra: onnxruntime-gpu)"
        )
    return [_CPU]


def _preload_cuda() -> None:
    # onnxruntime-gpu finds the CUDA/cuDNN libraries of the nvidia pip wheels only once they
    # are loaded; without them it silently falls back to the CPU. Repeated calls are no-ops.
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()


class ModelSession:
    """One model's InferenceSession: `load()` once, then `run` from any coroutine."""

    def __init__(self, name: str, folder: Path, options: SessionOptions | None = None) -> None:
        self.name = name
        self.folder = folder
        self._options = options or SessionOptions()
        self._session: ort.InferenceSession | None = None
        # One thread: runs of one model queue behind each other (the batcher sends one batch
        # at a time anyway), and each run already uses the intra-op threads.
        self._executor: ThreadPoolExecutor | None = None

    @property
    def path(self) -> Path:
        return self.folder / _MODEL_FILE

    def load(self) -> None:
        """Create the session (blocking: call it from a thread at start-up)."""
        if self._session is not None:
            return
        if not self.path.is_file():
            raise OnnxModelMissing.for_path(self.name, self.path)
        providers = _providers(self._options.device)
        if _CUDA in providers:
            _preload_cuda()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._options.intra_op_threads or cpu_threads()
        opts.inter_op_num_threads = self._options.inter_op_threads
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: onnxruntime warns about benign graph details
        # Idle intra-op threads otherwise spin for a while after each run, burning the cores
        # the event loop (HTTP, tokenising, pre- and post-processing) needs between batches.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        with onnxruntime_errors(self.name, loading=True):
            self._session = ort.InferenceSession(
                str(self.path), sess_options=opts, providers=providers
            )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"onnx-{self.name}")
        # onnxruntime falls back to the CPU silently when CUDA's libraries do not load: say
        # which provider each model really got.
        structlog.get_logger("plugins.onnx").info(
            "onnx_model_loaded",
            model=self.name,
            provider=self.provider,
            intra_op_threads=opts.intra_op_num_threads,
        )

    async def start(self) -> None:
        await asyncio.to_thread(self.load)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._session = None

    @property
    def provider(self) -> str:
        """The execution provider actually used ("CUDAExecutionProvider" or the CPU's)."""
        provider: str = self._loaded().get_providers()[0]
        return provider

    @property
    def inputs(self) -> tuple[TensorInfo, ...]:
        return tuple(_info(i) for i in self._loaded().get_inputs())

    @property
    def outputs(self) -> tuple[TensorInfo, ...]:
        return tuple(_info(o) for o in self._loaded().get_outputs())

    def run_sync(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        session = self._loaded()
        with onnxruntime_errors(self.name, loading=False):
            results: Sequence[Any] = session.run(
                None if outputs is None else list(outputs), dict(feeds)
            )
        return [np.asarray(o) for o in results]

    async def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        """The model's outputs (all, or those named) for `feeds`, in the session's thread."""
        self._loaded()
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, feeds, outputs)

    def _loaded(self) -> ort.InferenceSession:
        if self._session is None:
            raise OnnxModelUnavailable(f"model {self.name!r} is not loaded")
        return self._session


def _info(node: Any) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else (str(d) if d else None) for d in node.shape)
    return TensorInfo(name=str(node.name), shape=shape, dtype=str(node.type))
