"""Checking a request against a deployment, and narrowing a task's route to those that can
serve it, before any provider is called.

A limit the primary cannot meet is not an outage: another provider may well take the request,
so the route is narrowed to the deployments that can (the answer says which limit moved it),
and when none can, the caller gets a 400 naming the parameter and the primary's limit. Either
way no provider is called for a request it would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import litellm
import msgspec

from proxy.errors import InvalidRequestError
from proxy.limits._deployment import DeploymentLimits, limits_of
from proxy.limits._request import ImageRef, RequestProfile, RequestRefused
from proxy.routing import Deployment, RoutingTable, TaskRoute

__all__ = ["LimitViolation", "Limits", "Narrowed", "check"]


class LimitViolation(msgspec.Struct, frozen=True, kw_only=True):
    """A request parameter one deployment cannot take, and the rule it breaks."""

    param: str
    rule: str

    def __str__(self) -> str:
        return f"{self.param}: {self.rule}"


class Narrowed(msgspec.Struct, frozen=True, kw_only=True):
    """The route cut to the deployments that can take the request, in their order; `reason`
    is the primary's violation when a fallback serves because of it."""

    route: TaskRoute
    reason: LimitViolation | None = None


def _image_violation(limits: DeploymentLimits, image: ImageRef) -> LimitViolation | None:
    if image.size_bytes is None:
        return None
    who = limits.provider
    if limits.max_image_bytes is not None and image.size_bytes > limits.max_image_bytes:
        rule = f"{image.size_bytes} bytes exceed {who}'s {limits.max_image_bytes} per image"
        return LimitViolation(param=image.param, rule=rule)
    if limits.image_formats is not None and image.format not in limits.image_formats:
        accepted = ", ".join(sorted(limits.image_formats))
        rule = f"{image.format} images are not taken by {who} (only {accepted})"
        return LimitViolation(param=image.param, rule=rule)
    side = max(image.width, image.height)
    if limits.max_image_side is not None and side > limits.max_image_side:
        rule = f"{image.width}x{image.height} px exceeds {who}'s {limits.max_image_side} px a side"
        return LimitViolation(param=image.param, rule=rule)
    pixels = image.width * image.height
    if limits.max_image_pixels is not None and pixels > limits.max_image_pixels:
        rule = f"{pixels} pixels exceed {who}'s {limits.max_image_pixels} per image"
        return LimitViolation(param=image.param, rule=rule)
    return None


def _images_violation(
    limits: DeploymentLimits, images: tuple[ImageRef, ...]
) -> LimitViolation | None:
    if not limits.supports_vision:
        return LimitViolation(param="messages", rule=f"{limits.name} takes no images")
    cap = limits.max_images_per_request
    if cap is not None and len(images) > cap:
        rule = f"{len(images)} images exceed {limits.provider}'s {cap} per request"
        return LimitViolation(param="messages", rule=rule)
    for image in images:
        if (found := _image_violation(limits, image)) is not None:
            return found
    return None


def _input_tokens(limits: DeploymentLimits, profile: RequestProfile, window: int) -> int | None:
    """The request's input tokens when they may come near `window`, else None.

    One token per character bounds nearly any text from above, so below half the window the
    request fits with room to spare and the model's tokenizer is never run.
    """
    images = len(profile.images) * limits.tokens_per_image
    if profile.chars + images <= window // 2:
        return None
    counted = profile.token_counts.get(limits.model)
    if counted is None:
        counted = litellm.token_counter(
            model=limits.model, messages=profile.text_messages(), tools=profile.tools
        )
        profile.token_counts[limits.model] = counted
    return counted + images


def _param_violation(limits: DeploymentLimits, profile: RequestProfile) -> LimitViolation | None:
    supported = limits.supported_params
    if supported is None:
        return None
    # `n` is served by separate calls where the provider lacks it (`_n_violation`).
    unsupported = profile.used - supported - {"n"}
    if not unsupported:
        return None
    rule = f"not supported by {limits.provider} ({limits.name})"
    return LimitViolation(param=min(unsupported), rule=rule)


def _n_violation(limits: DeploymentLimits, profile: RequestProfile) -> LimitViolation | None:
    if profile.n <= 1 or limits.native_n:
        return None
    if profile.stream:
        rule = f"{limits.provider} has no n, and a stream cannot be served by {profile.n} calls"
        return LimitViolation(param="n", rule=rule)
    if profile.n > limits.max_fanout:
        rule = f"{limits.provider} serves n by separate calls, at most {limits.max_fanout}"
        return LimitViolation(param="n", rule=rule)
    return None


def check(
    limits: DeploymentLimits, request: RequestProfile | Mapping[str, Any]
) -> LimitViolation | None:
    """The first limit of `limits` the request breaks, or None when the deployment can take it.

    Raises `RequestRefused` (from reading a mapping) for an image no deployment could take.
    """
    profile = request if isinstance(request, RequestProfile) else RequestProfile(request)
    if (found := _param_violation(limits, profile)) is not None:
        return found
    if (found := _n_violation(limits, profile)) is not None:
        return found
    if profile.max_tokens is not None and limits.max_output_tokens is not None:
        name, value = profile.max_tokens
        if value > limits.max_output_tokens:
            rule = f"{value} exceeds {limits.name}'s {limits.max_output_tokens} output tokens"
            return LimitViolation(param=name, rule=rule)
    if profile.images and (found := _images_violation(limits, profile.images)) is not None:
        return found
    window = limits.max_input_tokens
    tokens = None if window is None else _input_tokens(limits, profile, window)
    if tokens is not None and window is not None and tokens > window:
        rule = f"{tokens} input tokens exceed {limits.name}'s context window of {window}"
        return LimitViolation(param="messages", rule=rule)
    return None


def _refusal(
    route: TaskRoute, violations: list[tuple[Deployment, LimitViolation]]
) -> InvalidRequestError:
    primary = violations[0][1]
    message = str(primary)
    if len(violations) > 1:
        others = "; ".join(f"{d.provider}: {v}" for d, v in violations[1:])
        message += f" (no fallback of '{route.task}' can take it either: {others})"
    return InvalidRequestError(message, param=primary.param)


class Limits:
    """Every deployment's limits, computed once at start-up from the routing table."""

    def __init__(self, by_deployment: Mapping[tuple[str, str], DeploymentLimits]) -> None:
        self._by = dict(by_deployment)

    @classmethod
    def from_routing(cls, routing: RoutingTable) -> Limits:
        found: dict[tuple[str, str], DeploymentLimits] = {}
        for task in routing.tasks():
            route = routing.get(task)
            for d in (*route.deployments, *route.content_policy_deployments) if route else ():
                if (d.group, d.model) not in found:
                    found[d.group, d.model] = limits_of(d)
        return cls(found)

    def of(self, deployment: Deployment) -> DeploymentLimits:
        """The deployment's limits (a deployment the table did not hold is limited freshly)."""
        found = self._by.get((deployment.group, deployment.model))
        return found if found is not None else limits_of(deployment)

    def copies(self, deployment: Deployment, params: Mapping[str, Any]) -> int:
        """How many separate calls serve `params` on `deployment`: n without native n, else 1."""
        n = params.get("n")
        if not isinstance(n, int) or n <= 1 or params.get("stream"):
            return 1
        return 1 if self.of(deployment).native_n else n

    def narrow(self, route: TaskRoute, params: Mapping[str, Any]) -> Narrowed:
        """`route` cut to the deployments that can take `params`; raises `InvalidRequestError`
        (400, naming the parameter) when none can, or when the request is wrong for all."""
        try:
            profile = RequestProfile(params)
        except RequestRefused as exc:
            raise InvalidRequestError(str(exc), param=exc.param) from None
        violations: list[tuple[Deployment, LimitViolation]] = []
        able: list[Deployment] = []
        for deployment in route.deployments:
            found = check(self.of(deployment), profile)
            if found is None:
                able.append(deployment)
            else:
                violations.append((deployment, found))
        if not violations:
            return Narrowed(route=route)
        if not able:
            raise _refusal(route, violations)
        on_refusal = tuple(
            d for d in route.content_policy_deployments if check(self.of(d), profile) is None
        )
        narrowed = TaskRoute(
            task=route.task, deployments=tuple(able), content_policy_deployments=on_refusal
        )
        primary = route.deployments[0]
        reason = violations[0][1] if able[0] is not primary else None
        return Narrowed(route=narrowed, reason=reason)
