"""The shot detector a keyframe policy names, run in-process on a summary's decoded frames.

Why a module of its own: the detector is a self-hosted ONNX model (`gateway models build`
writes TransNetV2 under `gateway_settings.onnx.models_dir`), loaded once per process by
`plugins.onnx.provider.OnnxModels`; the summary handler only needs a `frames.Detect` or, when
the model is missing, a logged reason and uniform frames instead. onnxruntime is imported on
the first keyframe policy's use, so a process that never samples keyframes never loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import structlog

from pipelines.frames import Detect, SamplingPolicy

__all__ = ["ShotDetectors"]

LOGGER = "gateway.pipelines"


class ShotDetectors:
    """The shot detectors of one handler, from the models directory of its config."""

    def __init__(self, config: str | Path, *, needed: bool = True) -> None:
        self._config = config
        self._models: Any = None
        if needed:
            # The settings only (no model is loaded): a bad onnx section stops start-up.
            self._open()

    def _open(self) -> Any:
        if self._models is None:
            from plugins.onnx.provider import OnnxModels  # noqa: PLC0415 - see the docstring

            self._models = OnnxModels.from_config(self._config)
        return self._models

    async def detect_for(self, policy: SamplingPolicy) -> Detect | None:
        """What finds the shots for `policy`; None (after logging why) when it samples no
        keyframes or its detector cannot be loaded, so the frames are uniform."""
        if policy.strategy != "keyframes":
            return None
        # Imported here: only keyframe policies need onnxruntime (see the module docstring).
        from plugins.onnx.errors import OnnxModelUnavailable  # noqa: PLC0415

        try:
            detector = await self._open().shot_detector(policy.detector)
        except OnnxModelUnavailable as exc:
            # Checked on every summary: a model built while the process runs is then used.
            structlog.get_logger(LOGGER).warning(
                "keyframes_unavailable", detector=policy.detector, reason=str(exc), using="uniform"
            )
            return None

        async def detect(small: list[np.ndarray]) -> list[tuple[int, int]]:
            found = await detector.scenes(small, threshold=policy.threshold)
            return [(scene.start, scene.end) for scene in found]

        return detect

    async def stop(self) -> None:
        if self._models is not None:
            await self._models.stop()
            self._models = None
