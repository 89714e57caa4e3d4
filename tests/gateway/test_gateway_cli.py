"""`gateway config check`, the command tree, and the one settings object each command builds."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest
from provider_setup import REPO_CONFIG

from gateway.cli import build_parser, main
from gateway.settings import Flags, build_stack_settings


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


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway --help` offers the proxy, pipeline, broker and emulator commands together."""
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("up", "consume", "send", "topics", "kafka", "emulators", "config"):
        assert command in out


def test_pipeline_commands_parse_their_flags() -> None:
    """consume, topics ensure and send accept the flags their documentation names."""
    parser = build_parser()
    args = parser.parse_args(["send", "--task", "captioning", "--text", "hi", "--wait"])
    assert (args.command, args.task, args.wait) == ("send", "captioning", True)
    assert parser.parse_args(["topics", "ensure"]).topics_command == "ensure"
    consume = parser.parse_args(["consume", "--proxy-url", "http://p", "--handler", "m:f"])
    assert (consume.proxy_url, consume.handler_factory) == ("http://p", "m:f")
    up = parser.parse_args(["up", "--handler", "m:f", "--handler-option", "a=1"])
    assert (up.handler_factory, up.handler_option) == ("m:f", ["a=1"])


def _config(tmp_path: Path, kafka: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"gateway_settings:\n  kafka:\n{kafka}", encoding="utf-8")
    return path


def test_the_flag_names_the_cluster_before_the_environment_and_the_config(
    tmp_path: Path,
) -> None:
    """--bootstrap beats KAFKA_BOOTSTRAP_SERVERS, which beats kafka.bootstrap_servers."""
    config = _config(tmp_path, "    bootstrap_servers: file:9092\n")
    env = {"KAFKA_BOOTSTRAP_SERVERS": "env:9092"}
    flagged = build_stack_settings(config, env, Flags(bootstrap="flag:9092"))
    assert flagged.cluster == ("flag:9092", "--bootstrap")
    assert build_stack_settings(config, env, Flags()).cluster == (
        "env:9092",
        "KAFKA_BOOTSTRAP_SERVERS",
    )
    assert build_stack_settings(config, {}, Flags()).cluster == (
        "file:9092",
        "gateway_settings.kafka.bootstrap_servers",
    )
    assert build_stack_settings(None, {}, Flags()).cluster is None


def test_redis_url_replaces_both_configured_redis_urls(tmp_path: Path) -> None:
    """REDIS_URL backs dedupe and rate limits alike, and the settings say where it came from."""
    config = _config(
        tmp_path,
        "    dedupe_redis_url: redis://a:6379/0\n    rate_limit_redis_url: redis://b:6379/0\n",
    )
    plain = build_stack_settings(config, {}, Flags())
    assert (plain.kafka.dedupe_redis_url, plain.redis_source) == (
        "redis://a:6379/0",
        "gateway_settings.kafka",
    )
    shared = build_stack_settings(config, {"REDIS_URL": "redis://r:1/2"}, Flags())
    assert shared.kafka.dedupe_redis_url == shared.kafka.rate_limit_redis_url == "redis://r:1/2"
    assert shared.redis_source == "REDIS_URL"


def test_settings_are_built_from_a_read_only_environment() -> None:
    """Building the settings never writes the environment (Gemini's alias goes to a copy)."""
    env = MappingProxyType({"GOOGLE_API_KEY": "g-key", "OPENAI_API_KEY": "o-key"})
    settings = build_stack_settings(None, env, Flags(), generate_master_key=True)
    assert settings.environ["GEMINI_API_KEY"] == "g-key"
    assert "GEMINI_API_KEY" not in env
    assert settings.missing_providers == ("anthropic", "fal", "vertex")
    assert settings.master_key_generated
    assert (settings.master_key or "").startswith("sk-gw-")


def test_a_set_master_key_is_used_and_not_replaced() -> None:
    """With LITELLM_MASTER_KEY set, the consumers' proxy key is that key, never a generated one."""
    env = {"LITELLM_MASTER_KEY": "sk-gw-from-env"}
    settings = build_stack_settings(None, env, Flags(), generate_master_key=True)
    assert (settings.master_key, settings.master_key_generated) == ("sk-gw-from-env", False)
    assert build_stack_settings(None, {}, Flags()).master_key is None


def test_flags_override_the_consumer_settings(tmp_path: Path) -> None:
    """--group, --handler, --proxy-url and --metrics-port land in the Kafka settings."""
    flags = Flags(
        group="g-flag",
        handler="pkg.mod:factory",
        handler_options={"delay_ms": "5"},
        proxy_url="http://proxy:4000",
        metrics_port=9100,
    )
    settings = build_stack_settings(_config(tmp_path, "    group_id: g-file\n"), {}, flags)
    kafka = settings.kafka
    assert (kafka.group_id, kafka.handler, kafka.metrics_port) == (
        "g-flag",
        "pkg.mod:factory",
        9100,
    )
    assert kafka.proxy.url == "http://proxy:4000"
    assert dict(settings.handler_options) == {"delay_ms": "5"}
