"""Which sampling policy a summary uses: the one of the provider that serves its task.

Why read from the routing: litellm_config.yaml's `model_list` decides which provider serves
`video-summarization` (its first deployment); the frame limits and widths are the provider's,
so they are keyed by provider in `gateway_settings.summaries.sampling` and looked up through
the same routing table the proxy builds. Switching the task's model in that file switches the
sampling with it, and nothing else needs editing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from core.config import load_section, read_config_file
from pipelines._errors import NoSamplingPolicy
from pipelines.frames import SamplingPolicy
from proxy.routing import RoutingTable

__all__ = [
    "DEFAULT_SAMPLING",
    "ServingPolicy",
    "SummaryConfig",
    "SummarySettings",
    "load_summary_config",
]

# The seeds' per-provider limits: Claude up to 20 images at 1024 px, GPT-4o up to 10 (adaptive
# to the video's length) at 2048 px, Gemini up to 16 at 1536 px.
DEFAULT_SAMPLING: dict[str, SamplingPolicy] = {
    "anthropic": SamplingPolicy(max_frames=20, strategy="uniform", width=1024),
    "openai": SamplingPolicy(max_frames=10, strategy="adaptive", width=2048),
    "gemini": SamplingPolicy(max_frames=16, strategy="uniform", width=1536),
}


class SummarySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`gateway_settings.summaries`: sampling policies keyed by provider name; a provider
    listed here replaces its default, the others keep theirs."""

    sampling: dict[str, SamplingPolicy] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_SAMPLING)
    )


class ServingPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The provider and model that serve a task first, and that provider's policy."""

    provider: str
    model: str
    policy: SamplingPolicy


class SummaryConfig:
    """The routing table and sampling settings of one config file, read once at start-up."""

    def __init__(self, routing: RoutingTable, settings: SummarySettings) -> None:
        self.routing = routing
        self.settings = settings
        self._sampling = {**DEFAULT_SAMPLING, **settings.sampling}

    def policy_for(self, task: str) -> ServingPolicy:
        """The policy of the provider of `task`'s primary deployment.

        Raises NoSamplingPolicy when the task is not routed or its provider has no policy.
        """
        route = self.routing.get(task)
        if route is None or not route.deployments:
            raise NoSamplingPolicy(f"task {task!r} is not in the config's model_list")
        primary = route.deployments[0]
        policy = self._sampling.get(primary.provider)
        if policy is None:
            raise NoSamplingPolicy(
                f"no sampling policy for provider {primary.provider!r} (task {task!r}); "
                "add it to gateway_settings.summaries.sampling"
            )
        return ServingPolicy(provider=primary.provider, model=primary.model, policy=policy)


def load_summary_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> SummaryConfig:
    """Routing and `gateway_settings.summaries` of the config at `path` (ConfigError if bad)."""
    data: dict[str, Any] = read_config_file(path)
    # Only provider names are needed here, never keys: an empty environment resolves none.
    routing = RoutingTable.from_config(data, environ or {})
    return SummaryConfig(routing, load_section(data, "summaries", SummarySettings))
