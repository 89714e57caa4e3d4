"""Provider limits, per the deployment that will serve a request, decided before any call.

Why it exists: a provider refuses (or LiteLLM silently trims) what exceeds its limits: too many
images, an image too large or not an image, a context window or output cap exceeded, a
parameter it lacks. Checked here first, such a request never costs a provider call; when the
primary cannot take it but a fallback can, the fallback serves, and the answer says why.

- `_deployment`: `DeploymentLimits`, built once per deployment at start-up (LiteLLM's model
  info, provider defaults, `model_info:` overrides in litellm_config.yaml).
- `_request`: `RequestProfile`, what one request asks (read once, images decoded once).
- `_check`: `check` (one deployment), `Limits.narrow` (a route), `Limits.copies` (how `n`
  is served).
- `_fanout`: `fan_out`, `n` choices from a provider that answers one.
"""

from proxy.limits._check import Limits, LimitViolation, Narrowed, check
from proxy.limits._deployment import DeploymentLimits, limits_of
from proxy.limits._fanout import fan_out
from proxy.limits._request import ImageRef, RequestProfile, RequestRefused

__all__ = [
    "DeploymentLimits",
    "ImageRef",
    "LimitViolation",
    "Limits",
    "Narrowed",
    "RequestProfile",
    "RequestRefused",
    "check",
    "fan_out",
    "limits_of",
]
