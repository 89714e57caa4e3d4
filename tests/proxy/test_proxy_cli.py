"""`gateway config check` validates litellm_config.yaml and prints the routing table."""

from __future__ import annotations

from pathlib import Path

import pytest
from proxy_support import REPO_CONFIG

from proxy.cli import main


def test_config_check_prints_each_task_with_its_providers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The repository config passes and each task is listed with its ordered providers."""
    assert main(["config", "check", "--config", str(REPO_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out
    assert "captioning" in out
    assert "anthropic:claude-sonnet-4-5 -> openai:gpt-4o -> gemini:gemini-2.5-flash" in out


def test_config_check_rejects_a_fallback_to_a_missing_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fallback that names no existing group exits 2 and names the group."""
    broken = tmp_path / "litellm_config.yaml"
    broken.write_text(REPO_CONFIG.read_text().replace("[captioning-fallback]", "[captioning-typo]"))
    assert main(["config", "check", "--config", str(broken)]) == 2
    assert "captioning-typo" in capsys.readouterr().err


def test_config_check_rejects_an_unknown_kafka_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in gateway_settings.kafka exits 2 and names the section and the field."""
    broken = tmp_path / "litellm_config.yaml"
    text = REPO_CONFIG.read_text().replace("max_in_flight_per_partition:", "max_inflight:")
    broken.write_text(text)
    assert main(["config", "check", "--config", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "gateway_settings.kafka" in err
    assert "max_inflight" in err


def test_plugin_subcommands_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    """Subcommands contributed by other packages (emulators, kafka) appear in `gateway --help`."""
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "emulators" in out
    assert "kafka" in out
