"""What the proxy and gateway tests share: fake provider keys, test resilience settings and
config copies pointing the providers at their emulators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from emulators.testing import EmulatorHandle

REPO_CONFIG = Path(__file__).resolve().parents[1] / "litellm_config.yaml"
FAKE_KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-fakeanthropickey-0123456789",
    "OPENAI_API_KEY": "sk-fakeopenaikey-0123456789abcdef",
    "GEMINI_API_KEY": "AIzaFakeGeminiKey0123456789abcdefgh",
}
# Short backoffs and timeouts, so fault tests finish quickly; the policy itself is the same.
TEST_RESILIENCE = {
    "attempts": 3,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "request_timeout_s": 1.5,
    "max_retry_after_s": 3,
}


def write_config(path: Path, edit: Any = None) -> Path:
    """Copy the repository's litellm_config.yaml to `path` with test resilience settings."""
    data = yaml.safe_load(REPO_CONFIG.read_text())
    data["gateway_settings"]["resilience"] = dict(TEST_RESILIENCE)
    if edit is not None:
        edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def emulator_env(
    anthropic: EmulatorHandle, openai_: EmulatorHandle, gemini: EmulatorHandle
) -> dict[str, str]:
    """Fake keys plus each provider's base URL pointed at its emulator."""
    return {
        **FAKE_KEYS,
        "ANTHROPIC_API_BASE": anthropic.url,
        "OPENAI_API_BASE": f"{openai_.url}/v1",
        "GEMINI_API_BASE": f"{gemini.url}/v1beta",
    }
