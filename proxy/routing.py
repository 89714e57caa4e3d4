"""The routing table: which providers serve a task, in which order.

Why it exists: litellm_config.yaml speaks LiteLLM's own vocabulary (`model_list` groups named
after tasks, `router_settings.fallbacks` listing other groups in order, and
`router_settings.content_policy_fallbacks` the groups that serve a request another refused on
content grounds) so that switching a
task's provider is an edit of that file alone and stock LiteLLM understands it too. The fast
path needs that information as a plain, validated, immutable table built once at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from core.config import ConfigError

__all__ = ["Deployment", "RoutingTable", "TaskRoute", "provider_of"]

_ENV_PREFIX = "os.environ/"
# Parameters the gateway resolves itself (keys per attempt) or that would change the retry
# policy behind its back.
_RESERVED = frozenset({"api_key", "num_retries", "max_retries", "timeout"})


def provider_of(model: str) -> str:
    """The provider part of a LiteLLM model name: `anthropic/claude-x` -> `anthropic`."""
    if "/" not in model:
        raise ConfigError(f"model '{model}' must name its provider, e.g. 'openai/{model}'")
    return model.split("/", 1)[0]


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    """One provider model able to serve a task, with everything needed to call it."""

    group: str
    provider: str
    model: str
    # Environment variable named by `api_key: os.environ/NAME` (the last key level).
    key_env: str | None
    # Literal key from config (discouraged, but LiteLLM allows it).
    literal_key: str | None
    params: Mapping[str, Any]
    # The entry's `model_info:` (LiteLLM's own keys, and the limits `proxy.limits` reads).
    model_info: Mapping[str, Any] = msgspec.field(default_factory=dict)


class TaskRoute(msgspec.Struct, frozen=True, kw_only=True):
    """A task's deployments in the order they are tried: its own group, then fallbacks."""

    task: str
    deployments: tuple[Deployment, ...]
    # Served instead, in order, when a deployment refuses the request on content grounds
    # (`router_settings.content_policy_fallbacks`); empty: a refusal is returned at once.
    content_policy_deployments: tuple[Deployment, ...] = ()


def _resolve(value: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str) and value.startswith(_ENV_PREFIX):
        return environ.get(value[len(_ENV_PREFIX) :]) or None
    return value


def _deployment(entry: Any, environ: Mapping[str, str]) -> Deployment:
    if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
        raise ConfigError(f"model_list entry needs a model_name: {entry!r}")
    group = entry["model_name"]
    raw = entry.get("litellm_params")
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), str):
        raise ConfigError(f"model_list entry '{group}' needs litellm_params.model")
    key = raw.get("api_key")
    key_env = (
        key[len(_ENV_PREFIX) :] if isinstance(key, str) and key.startswith(_ENV_PREFIX) else None
    )
    literal = key if isinstance(key, str) and key_env is None else None
    model_info = entry.get("model_info") or {}
    if not isinstance(model_info, dict):
        raise ConfigError(f"model_list entry '{group}': model_info must be a mapping")
    params: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _RESERVED:
            continue
        resolved = _resolve(value, environ)
        # An unset `os.environ/..._API_BASE` means "the provider's real URL": omit it.
        if resolved is not None:
            params[name] = resolved
    return Deployment(
        group=group,
        provider=provider_of(raw["model"]),
        model=raw["model"],
        key_env=key_env,
        literal_key=literal,
        params=params,
        model_info=model_info,
    )


def _fallbacks(
    router: Mapping[str, Any], name: str, groups: Mapping[str, list[Deployment]]
) -> dict[str, list[str]]:
    """`router_settings.<name>`: a list of `{group: [other groups]}`, each group known."""
    found: dict[str, list[str]] = {}
    for item in router.get(name) or []:
        if not isinstance(item, dict):
            raise ConfigError(f"router_settings.{name} entries are mappings: {item!r}")
        for group, targets in item.items():
            if group not in groups:
                raise ConfigError(f"{name} name unknown model group '{group}'")
            for target in targets or []:
                if target not in groups:
                    raise ConfigError(f"{name} of '{group}' names unknown group '{target}'")
            found[group] = list(targets or [])
    return found


class RoutingTable:
    """Immutable map task -> ordered deployments, built from a parsed litellm_config.yaml."""

    def __init__(self, routes: Mapping[str, TaskRoute]) -> None:
        self._routes = dict(routes)

    @classmethod
    def from_config(cls, data: Mapping[str, Any], environ: Mapping[str, str]) -> RoutingTable:
        groups: dict[str, list[Deployment]] = {}
        for entry in data.get("model_list") or []:
            dep = _deployment(entry, environ)
            groups.setdefault(dep.group, []).append(dep)
        if not groups:
            raise ConfigError("model_list is empty: no task can be served")
        router = data.get("router_settings") or {}
        fallbacks = _fallbacks(router, "fallbacks", groups)
        on_refusal = _fallbacks(router, "content_policy_fallbacks", groups)
        routes: dict[str, TaskRoute] = {}
        for group, deps in groups.items():
            ordered = list(deps)
            for target in fallbacks.get(group, []):
                ordered.extend(groups[target])
            refusal = [d for target in on_refusal.get(group, []) for d in groups[target]]
            routes[group] = TaskRoute(
                task=group,
                deployments=tuple(ordered),
                content_policy_deployments=tuple(refusal),
            )
        return cls(routes)

    def get(self, task: str) -> TaskRoute | None:
        return self._routes.get(task)

    def tasks(self) -> list[str]:
        return sorted(self._routes)

    def key_envs(self) -> set[str]:
        return {d.key_env for r in self._routes.values() for d in r.deployments if d.key_env}

    def describe(self) -> str:
        """Human-readable table for `gateway config check`."""
        lines = []
        for task in self.tasks():
            route = self._routes[task]
            chain = " -> ".join(
                f"{d.provider}:{d.model.split('/', 1)[1]}" for d in route.deployments
            )
            if route.content_policy_deployments:
                refusal = ", ".join(
                    f"{d.provider}:{d.model.split('/', 1)[1]}"
                    for d in route.content_policy_deployments
                )
                chain += f" (content policy: {refusal})"
            lines.append(f"{task:<32} {chain}")
        return "\n".join(lines)
