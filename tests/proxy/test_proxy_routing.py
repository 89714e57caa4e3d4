"""The routing table built from litellm_config.yaml: tasks, order, env resolution, validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import ConfigError
from proxy.routing import RoutingTable
from proxy.settings import build_settings

REPO_CONFIG = Path(__file__).resolve().parents[2] / "litellm_config.yaml"


def _config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(REPO_CONFIG.read_text())
    return data


def _chain(table: RoutingTable, task: str) -> list[str]:
    route = table.get(task)
    assert route is not None
    return [d.model for d in route.deployments]


def test_repository_config_routes_every_task_in_order() -> None:
    """Each task's primary comes first, then its fallbacks in configured order."""
    table = RoutingTable.from_config(_config(), {})
    assert _chain(table, "captioning") == [
        "anthropic/claude-sonnet-4-20250514",
        "gemini/gemini-2.5-flash",
    ]
    assert _chain(table, "styling") == [
        "gemini/gemini-2.0-flash",
        "anthropic/claude-3-5-sonnet-20241022",
    ]
    assert _chain(table, "vision-analysis")[0] == "anthropic/claude-sonnet-4-20250514"
    assert _chain(table, "visibility") == ["gemini/gemini-flash-latest"]
    assert _chain(table, "video-summarization") == [
        "anthropic/claude-sonnet-4-5",
        "openai/gpt-4o",
        "gemini/gemini-2.5-flash",
    ]


def test_unset_api_base_env_means_the_real_provider_url() -> None:
    """Without *_API_BASE in the environment no api_base is passed (LiteLLM's default URL)."""
    route = RoutingTable.from_config(_config(), {}).get("captioning")
    assert route is not None
    assert "api_base" not in route.deployments[0].params


def test_api_base_env_is_resolved_at_start_up() -> None:
    """An `os.environ/` api_base takes the environment's value."""
    env = {"ANTHROPIC_API_BASE": "http://127.0.0.1:9"}
    route = RoutingTable.from_config(_config(), env).get("captioning")
    assert route is not None
    assert route.deployments[0].params["api_base"] == "http://127.0.0.1:9"


def test_keys_are_not_part_of_deployment_params() -> None:
    """api_key is resolved per attempt; the table records only which env var holds it."""
    route = RoutingTable.from_config(_config(), {"ANTHROPIC_API_KEY": "sk-ant-secret"}).get(
        "captioning"
    )
    assert route is not None
    assert "api_key" not in route.deployments[0].params
    assert route.deployments[0].key_env == "ANTHROPIC_API_KEY"


def test_fallback_to_an_unknown_group_is_a_config_error() -> None:
    """A fallback naming a group that does not exist is rejected with its name."""
    data = _config()
    data["router_settings"]["fallbacks"].append({"styling": ["no-such-group"]})
    with pytest.raises(ConfigError, match="no-such-group"):
        RoutingTable.from_config(data, {})


def test_unknown_gateway_setting_is_a_config_error(tmp_path: Path) -> None:
    """A misspelt field under gateway_settings.resilience fails start-up naming the field."""
    data = _config()
    data["gateway_settings"]["resilience"]["atempts"] = 5
    path = tmp_path / "litellm_config.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="atempts"):
        build_settings(path, {}, master_key="sk-test-master")
