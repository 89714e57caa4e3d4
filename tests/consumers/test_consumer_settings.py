"""Specifications of gateway_settings.kafka loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers import load_kafka_settings
from core.config import ConfigError


def test_missing_file_section_gives_defaults() -> None:
    """Without a config file the defaults apply (embedded broker, standard topic names)."""
    settings = load_kafka_settings(None)
    assert settings.bootstrap_servers is None
    assert settings.topics.requests.name == "ai.requests"


def test_yaml_section_is_loaded(tmp_path: Path) -> None:
    """Topics and tuning come from gateway_settings.kafka; an old config's rate limits still
    parse (deprecated and ignored: the proxy holds the budgets)."""
    path = tmp_path / "litellm_config.yaml"
    path.write_text(
        "gateway_settings:\n  kafka:\n    bootstrap_servers: 'k:9092'\n"
        "    topics: {requests: {name: r, partitions: 12}}\n"
        "    rate_limits: [{provider: proxy, task: captioning, rate_per_s: 10, burst: 2}]\n",
        encoding="utf-8",
    )
    settings = load_kafka_settings(path)
    assert (settings.topics.requests.name, settings.topics.requests.partitions) == ("r", 12)
    assert [rule.rate_per_s for rule in settings.rate_limits] == [10]


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    """A typo in the kafka section fails at start-up naming the field."""
    path = tmp_path / "c.yaml"
    path.write_text("gateway_settings:\n  kafka:\n    max_inflight: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="max_inflight"):
        load_kafka_settings(path)
