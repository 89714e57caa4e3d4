"""A proxy for the accounting, metrics and tracing tests: the repository's config with Fal on
its emulator, the built ONNX models, and finished spans written to a JSON-lines file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from proxy_support import MASTER_KEY, SeededDatabase, ThreadedProxy, emulator_env, write_config

from emulators.testing import EmulatorHandle, FalHandle
from proxy.server import ProxyServer
from proxy.settings import build_settings

__all__ = ["ObservedProxy", "start_observed_proxy", "wait_for_spans"]

FAL_KEY = "fal-test-key-4b1c:secret"


class ObservedProxy(ThreadedProxy):
    """A running proxy and the file its spans go to."""

    spans: Path


def start_observed_proxy(
    directory: Path,
    *,
    emulators: dict[str, EmulatorHandle],
    fal: FalHandle,
    onnx_models: Path,
    key_database: SeededDatabase,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> ObservedProxy:
    spans = directory / "spans.jsonl"

    def configure(data: dict[str, Any]) -> None:
        settings = data["gateway_settings"]
        settings["keys"] = {"database_url": key_database.url, "refresh_ms": 50}
        settings["onnx"]["models_dir"] = str(onnx_models)
        settings["tracing"] = {"exporter": "jsonl", "path": str(spans)}
        if edit is not None:
            edit(data)

    config = write_config(directory / "litellm_config.yaml", configure)
    env = emulator_env(emulators["anthropic"], emulators["openai"], emulators["gemini"])
    env |= {
        "GATEWAY_KEY_ENCRYPTION_KEY": key_database.kek,
        "FAL_KEY": FAL_KEY,
        "FAL_API_BASE": fal.url,
    }
    running = ObservedProxy(ProxyServer(build_settings(config, env, master_key=MASTER_KEY), port=0))
    running.spans = spans
    running.start()
    return running


def wait_for_spans(
    path: Path, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """The spans in `path` once `predicate` holds for them (a server span ends just after its
    answer has been sent, so a test may read before it is written)."""
    ends = time.monotonic() + timeout_s
    while True:
        text = path.read_bytes() if path.exists() else b""
        spans = [orjson.loads(line) for line in text.splitlines() if line.strip()]
        if predicate(spans) or time.monotonic() > ends:
            return spans
        time.sleep(0.02)
