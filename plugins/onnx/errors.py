"""The errors of the self-hosted models: one root, so callers branch on two class attributes.

Why it exists: the HTTP routes, the LiteLLM handler and the consumers all run the same models;
each needs to know only what to answer (``status_code``) and whether trying again may pass
(``retriable``), never which library failed. onnxruntime's own failures are translated in one
place (``plugins.onnx.session``); the build's failures form the ``ExportError`` subtree
(``plugins.onnx.export.errors``).

    OnnxError                   500  root; retriable = False
    ├── OnnxBadInput            400  the input cannot be served (not an image, zero-sized or
    │                                enormous, wrong channel count, empty text list); ``param``
    │                                names the offending field; fails that item alone
    ├── OnnxOverloaded          429  retriable; the model's queue is full; ``retry_after_s``
    │                                estimates when it will have room
    ├── OnnxStopped             503  retriable; the model is stopping or not started (another
    │                                replica, or this one after a restart, can serve)
    ├── OnnxModelUnavailable    503  the model cannot be loaded; retrying will not help
    │   └── OnnxModelMissing    503  no model.onnx (or tokenizer) under the models directory:
    │                                the message names ``gateway models build``
    ├── OnnxInferenceError      500  onnxruntime failed while running a batch
    └── ExportError             500  (plugins.onnx.export.errors) building a model failed
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

__all__ = [
    "OnnxBadInput",
    "OnnxError",
    "OnnxInferenceError",
    "OnnxModelMissing",
    "OnnxModelUnavailable",
    "OnnxOverloaded",
    "OnnxStopped",
]


class OnnxError(Exception):
    """A self-hosted model could not answer; ``status_code`` is what an HTTP route answers."""

    retriable: ClassVar[bool] = False
    status_code: ClassVar[int] = 500
    # The OpenAI error ``type`` / ``code`` an HTTP route puts in its body.
    error_type: ClassVar[str] = "api_error"
    code: ClassVar[str] = "model_error"

    def __init__(
        self, message: str, *, param: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s


class OnnxBadInput(OnnxError):
    """One input cannot be served; ``param`` names the request field it came from."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_input"


class OnnxOverloaded(OnnxError):
    """The model's queue is full; ``retry_after_s`` estimates when it will have room."""

    retriable = True
    status_code = 429
    error_type = "rate_limit_error"
    code = "model_overloaded"


class OnnxStopped(OnnxError):
    """The model is not running (stopping, or never started)."""

    retriable = True
    status_code = 503
    code = "model_stopped"


class OnnxModelUnavailable(OnnxError):
    """The model's files exist but cannot be loaded."""

    status_code = 503
    code = "model_unavailable"


class OnnxModelMissing(OnnxModelUnavailable):
    """A model's files are not under the models directory; says how to build them."""

    code = "model_missing"

    @classmethod
    def for_path(cls, name: str, path: Path) -> OnnxModelMissing:
        """The error for model ``name`` whose file ``path`` does not exist."""
        return cls(
            f"model {name!r} is not built: {path} does not exist; run `gateway models build` "
            f"(or `gateway models build {name}`) with the same models directory"
        )


class OnnxInferenceError(OnnxError):
    """onnxruntime failed while running a batch (a bug or a corrupt model, not the input)."""

    code = "inference_failed"
