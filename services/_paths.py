"""Where launchers find programs and keep their state.

Why a cache directory of its own: the Kafka classpath is resolved by Maven once per machine
(tens of seconds) and reused by every later test session and `gateway up`.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from services.errors import ServiceNotInstalled

__all__ = ["cache_dir", "find_program"]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fashion-ai-gateway`` (``~/.cache/...`` by default), created."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = root / "fashion-ai-gateway"
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_program(name: str, *, extra_globs: tuple[str, ...] = (), hint: str) -> str:
    """The path of ``name`` on PATH or under ``extra_globs`` (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    for pattern in extra_globs:
        matches = sorted(glob.glob(pattern), reverse=True)
        if matches:
            return matches[0]
    raise ServiceNotInstalled(f"{name} is not installed: {hint}")
