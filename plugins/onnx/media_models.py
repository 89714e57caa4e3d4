"""The runners of the models that have no HTTP route of their own: image embeddings
(MobileNetV2 features for near-duplicate detection) and video shot boundaries (TransNetV2).

Why it exists: handlers (the consumers, in-process: no HTTP hop) call these for events, with
the same guarantees as the routes: one session per model, batching where callers are
concurrent, bad input as OnnxBadInput naming the field, the work off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from plugins.onnx import image_embeddings, keyframes
from plugins.onnx.session import ModelSession, SessionOptions
from plugins.onnx.settings import BatchSettings
from plugins.onnx.vision import ImageModel

__all__ = ["ShotDetector", "image_embedder"]

_WINDOWS_PER_RUN = 8


def _embed_pre(image: Image.Image, _size: tuple[int, int]) -> tuple[np.ndarray, Any]:
    return image_embeddings.preprocess(image), None


def _embed_post(outputs: Sequence[np.ndarray], _context: Any) -> np.ndarray:
    return image_embeddings.embedding(outputs[0][0])


def image_embedder(
    name: str, folder: Path, *, batching: BatchSettings, options: SessionOptions | None = None
) -> ImageModel[np.ndarray]:
    """A MobileNetV2-style model answering one L2-normalised feature vector per image."""
    return ImageModel(
        name,
        folder,
        preprocess=_embed_pre,
        postprocess=_embed_post,
        batching=batching,
        options=options,
    )


class ShotDetector:
    """TransNetV2: a video's frames -> its shots and one keyframe per shot.

    A video is already a batch (its overlapping 100-frame windows run together), so calls are
    not gathered across callers; they run one after another in the model's thread.
    """

    def __init__(self, name: str, folder: Path, options: SessionOptions | None = None) -> None:
        self.name = name
        self._session = ModelSession(name, folder, options)
        self._output = "single_frame"

    @property
    def session(self) -> ModelSession:
        return self._session

    async def start(self) -> None:
        await self._session.start()
        outputs = [o.name for o in self._session.outputs]
        self._output = self._output if self._output in outputs else outputs[0]

    async def stop(self) -> None:
        self._session.close()

    async def probabilities(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """One cut probability per frame (decoded HxWx3 uint8 RGB frames, any size)."""
        small = await asyncio.to_thread(keyframes.stack_frames, frames)
        name = self._session.inputs[0].name

        def infer(windows: np.ndarray) -> np.ndarray:
            # Eight windows per run: a long video's windows at once would need gigabytes of
            # activations, and eight already keep the kernels busy.
            chunks = [
                self._session.run_sync({name: windows[i : i + _WINDOWS_PER_RUN]}, [self._output])[0]
                for i in range(0, len(windows), _WINDOWS_PER_RUN)
            ]
            return np.concatenate(chunks)

        # onnxruntime sessions are thread-safe: the video's runs need not queue behind others'.
        return await asyncio.to_thread(keyframes.predict, small, infer)

    async def scenes(
        self, frames: Sequence[np.ndarray], *, threshold: float = 0.5
    ) -> list[keyframes.Scene]:
        """The video's shots (first and last frame index of each)."""
        return keyframes.scenes(await self.probabilities(frames), threshold)
