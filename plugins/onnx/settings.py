"""`gateway_settings.onnx`: where the built models are and how each is run.

Why it exists: the self-hosted models are configured in the same file as every provider (an
operator switches a task to them by editing litellm_config.yaml alone), and a typo there must be
an error at start-up naming the field, never a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from core.config import ConfigError, load_section, read_config_file

__all__ = ["DEFAULT_MODELS_DIR", "BatchSettings", "OnnxSettings", "load_onnx_settings"]

# Relative to the config file's folder, where `gateway models build` writes by default.
DEFAULT_MODELS_DIR = ".gateway/models"


class BatchSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Dynamic micro-batching of one model."""

    # A batch runs as soon as it holds this many items ...
    max_batch: int = 32
    # ... or this long after its first item arrived, whichever comes first.
    max_wait_ms: float = 2.0
    # Items waiting beyond this are refused (429 with a Retry-After estimate).
    max_queue: int = 1024

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")


class OnnxSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Where `gateway models build` wrote the models (relative: to the config file's folder).
    models_dir: str = DEFAULT_MODELS_DIR
    # "auto": CUDA when onnxruntime offers it, else CPU; "cpu" forces the CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads per model run; 0 chooses from the cores this process may use.
    intra_op_threads: int = 0
    batching: BatchSettings = msgspec.field(default_factory=BatchSettings)
    # Per model name, overrides of `batching` (e.g. a smaller batch for a large image model).
    models: dict[str, BatchSettings] = msgspec.field(default_factory=dict)
    # Hosts, addresses or networks (CIDR) an image URL of a vision request may reach despite
    # the guarded fetcher's private-address rules (an image server inside the network).
    fetch_allow: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.intra_op_threads < 0:
            raise ValueError("intra_op_threads must not be negative")

    def batching_of(self, model: str) -> BatchSettings:
        return self.models.get(model, self.batching)

    def models_path(self, config_dir: Path) -> Path:
        path = Path(self.models_dir).expanduser()
        return path if path.is_absolute() else config_dir / path


def load_onnx_settings(config_path: str | Path) -> tuple[OnnxSettings, Path]:
    """The settings and the resolved models directory for the config file at `config_path`."""
    try:
        settings = load_section(read_config_file(config_path), "onnx", OnnxSettings)
    except ValueError as exc:
        raise ConfigError(f"gateway_settings.onnx: {exc}") from exc
    models = settings.models_path(Path(config_path).resolve().parent)
    if models.exists() and not models.is_dir():
        raise ConfigError(f"gateway_settings.onnx.models_dir: {models} is not a directory")
    return settings, models
