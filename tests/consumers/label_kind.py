"""A request kind the gateway does not ship, declared the way a handler package declares one.

Product labelling: a request names a product and its title, the handler answers with labels.
Nothing in the runtime knows this kind; the config's `handlers:` entry brings it in.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from consumers import EventKind, HandlerContext, ProviderUnavailable
from consumers.handler_config import HandlerResources
from schemas import Failed, Request, Result


class LabelRequested(Request, frozen=True, kw_only=True, tag="label.requested"):
    """Label one product from its title."""

    title: Annotated[str, msgspec.Meta(min_length=1)]


class Labels(msgspec.Struct, frozen=True, kw_only=True):
    """What a labelling handler returns."""

    labels: list[str]
    labeller: str


class LabelSucceeded(Result, frozen=True, kw_only=True, tag="label.succeeded"):
    labels: list[str]
    labeller: str


class LabelFailed(Failed, frozen=True, kw_only=True, tag="label.failed"):
    pass


LABEL = EventKind(
    request=LabelRequested, payload=Labels, succeeded=LabelSucceeded, failed=LabelFailed
)


class LabelOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prefix: str
    max_labels: Annotated[int, msgspec.Meta(gt=0)] = 3


class TitleLabeller:
    """Labels are the title's words, prefixed; a title saying "flaky" fails once first."""

    kind = LABEL

    def __init__(self, options: LabelOptions, resources: HandlerResources) -> None:
        self._options = options
        self._group = resources.settings.group_id
        self._failed: set[str] = set()
        self.started = False

    @property
    def provider(self) -> str:
        return "labeller"

    async def start(self) -> None:
        self.started = True

    async def handle(self, event: LabelRequested, ctx: HandlerContext) -> Labels:
        if "flaky" in event.title and event.event_id not in self._failed:
            self._failed.add(event.event_id)
            raise ProviderUnavailable("labeller warming up")
        words = event.title.lower().split()[: self._options.max_labels]
        return Labels(labels=[f"{self._options.prefix}{w}" for w in words], labeller=self._group)
