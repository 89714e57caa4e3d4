"""Content-policy fallbacks (`router_settings.content_policy_fallbacks`): read from the config,
and applied by the one retry/fallback policy; plugin refusals map onto ContentPolicyError."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from provider_setup import write_config

import plugins.vertex.errors as vertex_errors
from core.config import ConfigError
from core.redact import Redactor
from proxy.errors import (
    AllProvidersFailedError,
    BadRequestError,
    ContentPolicyError,
    ExternalServiceError,
    ServiceUnavailableError,
)
from proxy.keys import KeyResolver
from proxy.media.errors import is_plugin_error, plugin_error
from proxy.resilience import Resilience
from proxy.routing import Deployment, RoutingTable
from proxy.settings import ResilienceSettings

SETTINGS = ResilienceSettings(attempts=2, backoff_base_s=0, backoff_max_s=0)
ENV = {"A_KEY": "a", "B_KEY": "b", "C_KEY": "c"}


def _config(content_policy: list[dict[str, list[str]]] | None) -> dict[str, Any]:
    groups = {"try-on": "a/one", "try-on-fallback": "b/two", "try-on-permissive": "c/three"}
    data: dict[str, Any] = {
        "model_list": [
            {
                "model_name": group,
                "litellm_params": {"model": model, "api_key": f"os.environ/{model[0].upper()}_KEY"},
            }
            for group, model in groups.items()
        ],
        "router_settings": {"fallbacks": [{"try-on": ["try-on-fallback"]}]},
    }
    if content_policy is not None:
        data["router_settings"]["content_policy_fallbacks"] = content_policy
    return data


class Script:
    """A provider call raising the scripted errors per provider, then answering."""

    def __init__(self, **errors: list[Exception]) -> None:
        self.errors = errors
        self.calls: list[str] = []

    async def __call__(self, deployment: Deployment, key: str) -> str:
        self.calls.append(deployment.provider)
        pending = self.errors.get(deployment.provider, [])
        if pending:
            raise pending.pop(0)
        return deployment.provider


def _refusal() -> ContentPolicyError:
    return ContentPolicyError("refused: IMAGE_SAFETY", provider="x")


def _run(data: dict[str, Any], script: Script) -> Any:
    route = RoutingTable.from_config(data, ENV).get("try-on")
    assert route is not None
    return asyncio.run(Resilience(SETTINGS, KeyResolver(ENV)).run(route, None, script))


def test_the_config_names_content_policy_fallbacks_apart_from_fallbacks() -> None:
    """A task's content-policy groups are kept apart from its ordered fallbacks."""
    route = RoutingTable.from_config(_config([{"try-on": ["try-on-permissive"]}]), ENV).get(
        "try-on"
    )
    assert route is not None
    assert [d.provider for d in route.deployments] == ["a", "b"]
    assert [d.provider for d in route.content_policy_deployments] == ["c"]


def test_an_unknown_content_policy_group_is_a_config_error() -> None:
    """A content-policy fallback naming no model group is refused when the config loads."""
    with pytest.raises(ConfigError, match="content_policy_fallbacks of 'try-on'"):
        RoutingTable.from_config(_config([{"try-on": ["nowhere"]}]), ENV)


def test_a_refusal_with_a_content_policy_fallback_is_served_by_it() -> None:
    """The refused request skips the ordinary fallback and goes to the content-policy one."""
    script = Script(a=[_refusal()])
    outcome = _run(_config([{"try-on": ["try-on-permissive"]}]), script)
    assert outcome.deployment.provider == "c"
    assert outcome.fallback is True
    assert script.calls == ["a", "c"]


def test_a_refusal_without_a_content_policy_fallback_is_returned_at_once() -> None:
    """No entry: the refusal is the answer, with no retry and no ordinary fallback."""
    script = Script(a=[_refusal()])
    with pytest.raises(ContentPolicyError):
        _run(_config(None), script)
    assert script.calls == ["a"]


def test_a_second_refusal_is_returned_as_it_is() -> None:
    """When the content-policy fallback refuses too, that refusal ends the request."""
    script = Script(a=[_refusal()], c=[_refusal()])
    with pytest.raises(ContentPolicyError):
        _run(_config([{"try-on": ["try-on-permissive"]}]), script)
    assert script.calls == ["a", "c"]


def test_other_bad_requests_never_reach_the_content_policy_fallback() -> None:
    """A plain 400 is still returned at once although a content-policy fallback exists."""
    script = Script(a=[BadRequestError("bad size")])
    with pytest.raises(BadRequestError):
        _run(_config([{"try-on": ["try-on-permissive"]}]), script)
    assert script.calls == ["a"]


def test_a_failing_content_policy_fallback_reports_every_provider() -> None:
    """The content-policy fallback failing retriably ends in an error naming both."""
    script = Script(a=[_refusal()], c=[ServiceUnavailableError("down")] * 2)
    with pytest.raises(AllProvidersFailedError) as caught:
        _run(_config([{"try-on": ["try-on-permissive"]}]), script)
    assert [f.provider for f in caught.value.failures] == ["a", "c"]


_CLASSES = sorted(
    (
        value
        for value in vars(vertex_errors).values()
        if isinstance(value, type) and issubclass(value, vertex_errors.VertexError)
    ),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda cls: cls.__name__)
def test_each_vertex_error_maps_with_its_retriable_flag(
    cls: type[vertex_errors.VertexError],
) -> None:
    """A Vertex plugin error becomes a proxy error retriable exactly when it was; a refusal
    becomes a ContentPolicyError."""
    error = cls("boom", retry_after_s=2)
    assert is_plugin_error(error)
    mapped = plugin_error(error, "vertex", Redactor())
    assert isinstance(mapped, ExternalServiceError)
    assert mapped.retriable is cls.retriable
    assert isinstance(mapped, ContentPolicyError) is cls.content_policy
    assert mapped.retry_after_s == 2


def test_config_check_names_an_invalid_safety_threshold(tmp_path: Path) -> None:
    """`gateway config check` refuses a config whose safety threshold is no valid name."""

    def bad(data: dict[str, Any]) -> None:
        for entry in data["model_list"]:
            if entry["model_name"] == "image-generation-fallback":
                entry["litellm_params"]["safety_settings"] = [
                    {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_SOMETIMES"}
                ]

    config = write_config(tmp_path / "litellm_config.yaml", bad)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "gateway"), "config", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "image-generation-fallback.safety_settings[0].threshold" in done.stderr
    assert "BLOCK_SOMETIMES" in done.stderr
