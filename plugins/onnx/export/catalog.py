"""Every model `gateway models build` knows, in build order.

Why it exists: the build loop, the CLI and the test fixture all need the same list; adding a
model is one import and one entry here. Importing it is cheap: specs import their
frameworks (torch, onnx) only inside their converters.
"""

from __future__ import annotations

from plugins.onnx.export.blazeface import SPEC as BLAZEFACE
from plugins.onnx.export.minilm import SPEC as MINILM
from plugins.onnx.export.minilm_int8 import SPEC as MINILM_INT8
from plugins.onnx.export.mobilenetv2 import SPEC as MOBILENETV2
from plugins.onnx.export.mtcnn import ONET, PNET, RNET
from plugins.onnx.export.selfie import SPEC as SELFIE
from plugins.onnx.export.spec import ModelSpec
from plugins.onnx.export.transnetv2 import SPEC as TRANSNETV2

__all__ = ["SPECS"]

SPECS: tuple[ModelSpec, ...] = (
    MINILM,
    MINILM_INT8,
    TRANSNETV2,
    MOBILENETV2,
    BLAZEFACE,
    SELFIE,
    PNET,
    RNET,
    ONET,
)
