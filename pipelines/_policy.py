"""Which sampling policy a summary uses: the one of the provider that serves its task.

Why read from the routing: litellm_config.yaml's `model_list` decides which provider serves
`video-summarization` (its first deployment); the frame limits and widths are the provider's,
so they are keyed by provider in `gateway_settings.summaries.sampling` and looked up through
the same routing table the proxy builds. Switching the task's model in that file switches the
sampling with it, and nothing else needs editing.

Frames fit the whole chain, not only the primary: the proxy refuses a deployment a request
exceeds before calling it (`proxy.limits`: 20 images for Claude, `max_images_per_request` in a
deployment's `model_info`), so frames sampled for Claude alone would leave no fallback when
Claude is down. The count is therefore the smallest any deployment of the task's chain takes
(its provider's `max_frames` and its `model_info` limit), while the strategy and width stay
the primary's. Resampling for a fallback after the primary failed was the other choice; it
would mean a second request through the proxy (the primary tried again) and a retry owned by
the handler, where retries and fallbacks belong to `proxy.resilience` alone. A fallback whose
provider has no policy bounds the count only by its `model_info` limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from core.config import load_section, read_config_file
from pipelines._errors import NoSamplingPolicy
from pipelines.frames import SamplingPolicy
from proxy.routing import Deployment, RoutingTable

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
    """The provider and model that serve a task first, and that provider's policy with its
    frame count cut to what every deployment of the chain takes."""

    provider: str
    model: str
    policy: SamplingPolicy
    # The primary's own count, before the chain cut it; and the deployment that cut it.
    primary_frames: int
    capped_by: str | None = None


class SummaryConfig:
    """The routing table and sampling settings of one config file, read once at start-up."""

    def __init__(self, routing: RoutingTable, settings: SummarySettings) -> None:
        self.routing = routing
        self.settings = settings
        self._sampling = {**DEFAULT_SAMPLING, **settings.sampling}

    @property
    def uses_keyframes(self) -> bool:
        """Whether any provider's policy samples keyframes (so a shot detector is needed)."""
        return any(p.strategy == "keyframes" for p in self._sampling.values())

    def policy_for(self, task: str) -> ServingPolicy:
        """The policy of the provider of `task`'s primary deployment, its count cut to the
        smallest any deployment of the chain takes.

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
        count, capped_by = policy.max_frames, None
        for deployment in route.deployments:
            limit = self._frames_for(deployment)
            if limit is not None and limit < count:
                count, capped_by = limit, deployment.model
        return ServingPolicy(
            provider=primary.provider,
            model=primary.model,
            policy=msgspec.structs.replace(policy, max_frames=count),
            primary_frames=policy.max_frames,
            capped_by=capped_by,
        )

    def _frames_for(self, deployment: Deployment) -> int | None:
        """The most frames `deployment` takes: its provider's count, its model_info limit."""
        limits: list[int] = []
        policy = self._sampling.get(deployment.provider)
        if policy is not None:
            limits.append(policy.max_frames)
        declared = deployment.model_info.get("max_images_per_request")
        if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 1:
            limits.append(declared)
        return min(limits) if limits else None


def load_summary_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> SummaryConfig:
    """Routing and `gateway_settings.summaries` of the config at `path` (ConfigError if bad)."""
    data: dict[str, Any] = read_config_file(path)
    # Only provider names are needed here, never keys: an empty environment resolves none.
    routing = RoutingTable.from_config(data, environ or {})
    return SummaryConfig(routing, load_section(data, "summaries", SummarySettings))
