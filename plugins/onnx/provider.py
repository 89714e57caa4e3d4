"""The self-hosted models of one process, and the embeddings provider the gateway's route loads.

Why it exists: a model is loaded once per process (one InferenceSession, one batcher) however
many routes or handlers use it, on first use or when the gateway starts; a model that was not
built is an error naming `gateway models build`, never a crash. The gateway's `/v1/embeddings`
route imports no plugin: it loads `OnnxEmbeddings` by the path named in
`gateway_settings.embeddings.providers` and calls `prepare`, `embed`, `start`, `stop` only.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from plugins.onnx.errors import OnnxBadInput, OnnxModelMissing, OnnxModelUnavailable
from plugins.onnx.media_models import ShotDetector, image_embedder
from plugins.onnx.session import SessionOptions
from plugins.onnx.settings import OnnxSettings, load_onnx_settings
from plugins.onnx.text_embeddings import Embeddings, TextEmbedder
from plugins.onnx.vision import ImageModel

__all__ = ["OnnxEmbeddings", "OnnxModels"]

_PREFIX = "onnx/"
RunnerT = TypeVar("RunnerT", TextEmbedder, ImageModel[Any], ShotDetector)
_Kind = Literal["embeddings", "face-detection", "segmentation", "image-embeddings", "keyframes"]


def model_name(model: str) -> str:
    """`onnx/minilm-l6-v2` (a deployment's model) or `minilm-l6-v2` -> `minilm-l6-v2`."""
    name = model.removeprefix(_PREFIX)
    if not name or "/" in name or name.startswith("."):
        raise OnnxBadInput(f"{model!r} is not a self-hosted model name", param="model")
    return name


class OnnxModels:
    """Runners by model name, each started once (under a lock) and stopped together."""

    def __init__(self, settings: OnnxSettings, models_dir: Path) -> None:
        self.settings = settings
        self.models_dir = models_dir
        self._runners: dict[str, TextEmbedder | ImageModel[Any] | ShotDetector] = {}
        self._tasks: dict[str, str] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, config_path: str | Path) -> OnnxModels:
        settings, models_dir = load_onnx_settings(config_path)
        return cls(settings, models_dir)

    def _options(self) -> SessionOptions:
        return SessionOptions(
            device=self.settings.device, intra_op_threads=self.settings.intra_op_threads
        )

    def task_of(self, name: str) -> str | None:
        """The task the build manifest records for `name` (None: no manifest, or not in it)."""
        if name not in self._tasks:
            manifest = self.models_dir / "manifest.json"
            entry = (
                json.loads(manifest.read_text()).get("models", {}).get(name)
                if manifest.is_file()
                else None
            )
            task = entry.get("task") if isinstance(entry, dict) else None
            if task is None:
                return None  # not cached: the model may be built while this process runs
            self._tasks[name] = str(task)
        return self._tasks[name]

    def _check_task(self, name: str, kind: _Kind) -> Path:
        folder = self.models_dir / name
        if not (folder / "model.onnx").is_file():
            raise OnnxModelMissing.for_path(name, folder / "model.onnx")
        task = self.task_of(name)
        if task is not None and task != kind:
            raise OnnxModelUnavailable(f"model {name!r} is a {task} model, not {kind}")
        return folder

    async def _runner(self, name: str, build: Callable[[Path], RunnerT], kind: _Kind) -> RunnerT:
        runner = self._runners.get(name)
        if runner is None:
            async with self._lock:
                runner = self._runners.get(name)
                if runner is None:
                    fresh = build(self._check_task(name, kind))
                    await fresh.start()
                    self._runners[name] = runner = fresh
        return runner  # type: ignore[return-value]  # callers check the kind they asked for

    async def embedder(self, name: str) -> TextEmbedder:
        def build(folder: Path) -> TextEmbedder:
            return TextEmbedder(
                name, folder, batching=self.settings.batching_of(name), options=self._options()
            )

        runner = await self._runner(name, build, "embeddings")
        if not isinstance(runner, TextEmbedder):
            raise OnnxModelUnavailable(f"model {name!r} is not a text-embedding model")
        return runner

    async def image_model(
        self, name: str, kind: Literal["face-detection", "segmentation"]
    ) -> ImageModel[Any]:
        """A face detector (pre/post from plugins.onnx.faces) or a person segmenter (masks)."""

        def build(folder: Path) -> ImageModel[Any]:
            module = _processing("faces" if kind == "face-detection" else "masks")
            return ImageModel(
                name,
                folder,
                preprocess=module.preprocess,
                postprocess=module.postprocess,
                batching=self.settings.batching_of(name),
                options=self._options(),
                input_side=module.INPUT_SIZE,
            )

        runner = await self._runner(name, build, kind)
        if not isinstance(runner, ImageModel):
            raise OnnxModelUnavailable(f"model {name!r} is not an image model")
        return runner

    async def image_embedder(self, name: str) -> ImageModel[Any]:
        """A model answering one L2-normalised feature vector per image (near duplicates)."""

        def build(folder: Path) -> ImageModel[Any]:
            return image_embedder(
                name, folder, batching=self.settings.batching_of(name), options=self._options()
            )

        runner = await self._runner(name, build, "image-embeddings")
        if not isinstance(runner, ImageModel):
            raise OnnxModelUnavailable(f"model {name!r} is not an image model")
        return runner

    async def shot_detector(self, name: str) -> ShotDetector:
        """A video shot-boundary model (TransNetV2)."""

        def build(folder: Path) -> ShotDetector:
            return ShotDetector(name, folder, self._options())

        runner = await self._runner(name, build, "keyframes")
        if not isinstance(runner, ShotDetector):
            raise OnnxModelUnavailable(f"model {name!r} is not a shot-boundary model")
        return runner

    async def stop(self) -> None:
        runners, self._runners = self._runners, {}
        for runner in runners.values():
            await runner.stop()


def _processing(module: str) -> Any:
    # Imported on first use: the face and mask maths is only needed by the processes that
    # serve those tasks.
    try:
        return importlib.import_module(f"plugins.onnx.{module}")
    except ImportError as exc:
        raise OnnxModelUnavailable(f"plugins.onnx.{module} cannot be imported: {exc}") from exc


class OnnxEmbeddings:
    """The `/v1/embeddings` provider: self-hosted text-embedding models of one config file."""

    def __init__(self, config_path: str | Path) -> None:
        self._models = OnnxModels.from_config(config_path)

    @property
    def models(self) -> OnnxModels:
        return self._models

    async def start(self) -> None:
        """Nothing to do: models load in `prepare` or on first use."""

    async def stop(self) -> None:
        await self._models.stop()

    async def prepare(self, model: str) -> None:
        """Load `model` now (at start-up), so the first request pays nothing; raises
        OnnxModelMissing naming `gateway models build` when it was not built."""
        await self._models.embedder(model_name(model))

    async def embed(self, model: str, texts: Sequence[str]) -> Embeddings:
        embedder = await self._models.embedder(model_name(model))
        return await embedder.embed(texts)
