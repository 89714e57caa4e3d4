"""Structured-text handlers: captioning, styling, vision analysis and visibility filtering.

Why one handler shape for four tasks: each asks the proxy's chat completion for its task (so
switching providers stays a litellm_config.yaml change), sends the JSON Schema of its answer
as `response_format`, and decodes the answer strictly into the same Struct, so what a result
carries always matches its published schema. An answer that does not validate is sent back
ONCE with the validation error; a second miss fails the request (not retriable: the model had
its chance) with an error naming the field. The HTTP call, its headers, deadline and error
mapping are `consumers.proxy_handler.ProxyCompletionHandler`'s, reused whole.

Images are URLs the provider fetches, data: URLs, or references (`pipelines._refs.MediaRef`:
an artifact id in the store of `gateway_settings.artifacts` of `options.config`, a path under
`allowed_roots`, a URL for the guarded fetcher) that the handler resolves into data: URLs
before the proxy is asked (`pipelines._images`); a reference that cannot be resolved fails the
request naming why (InputRefused, InputNotFound; InputUnavailable is retriable).

    gateway_settings:
      kafka:
        handlers:
          - factory: pipelines.structured:Captioning
            tasks: [captioning]
            options: {timeout_s: 60, config: litellm_config.yaml, allowed_roots: [/data/images]}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from consumers.errors import HandlerError
from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.kinds import Completion, EventKind, kinds_schema
from consumers.proxy_handler import ProxyCompletionHandler
from pipelines._images import ImageUrls
from pipelines._media import MediaOptions
from pipelines._proxied import Proxied
from pipelines._structured_schemas import (
    AnalysisFailed,
    AnalysisRequested,
    AnalysisSucceeded,
    Caption,
    CaptionFailed,
    CaptionRequested,
    CaptionSucceeded,
    ImageInput,
    ProductCaption,
    Styling,
    StylingFailed,
    StylingRequested,
    StylingSucceeded,
    StylingSuggestions,
    Visibility,
    VisibilityDecision,
    VisibilityFailed,
    VisibilityRequested,
    VisibilitySucceeded,
    VisionAnalysis,
    VisionFindings,
    answer_schema,
)
from schemas import ChatMessage, CompletionRequested, ImagePart, ImageURL, Request, TextPart, Usage

__all__ = [
    "ANALYSIS",
    "ANALYSIS_TASK",
    "CAPTION",
    "CAPTION_TASK",
    "STRUCTURED_KINDS",
    "STYLING",
    "STYLING_TASK",
    "VISIBILITY",
    "VISIBILITY_TASK",
    "Captioning",
    "InvalidAnswer",
    "StructuredHandler",
    "StructuredOptions",
    "StructuredTask",
    "Styler",
    "VisibilityFilter",
    "VisionAnalyst",
    "event_schemas",
    "retry_prompt",
]

Req = TypeVar("Req", bound=Request)
Out = TypeVar("Out", bound=msgspec.Struct)
Ans = TypeVar("Ans", bound=msgspec.Struct)

CAPTION = EventKind(
    request=CaptionRequested, payload=Caption, succeeded=CaptionSucceeded, failed=CaptionFailed
)
STYLING = EventKind(
    request=StylingRequested, payload=Styling, succeeded=StylingSucceeded, failed=StylingFailed
)
ANALYSIS = EventKind(
    request=AnalysisRequested,
    payload=VisionAnalysis,
    succeeded=AnalysisSucceeded,
    failed=AnalysisFailed,
)
VISIBILITY = EventKind(
    request=VisibilityRequested,
    payload=Visibility,
    succeeded=VisibilitySucceeded,
    failed=VisibilityFailed,
)
STRUCTURED_KINDS: tuple[EventKind[Any, Any], ...] = (CAPTION, STYLING, ANALYSIS, VISIBILITY)


def event_schemas() -> dict[str, Any]:
    """JSON Schema of the structured kinds' events (`consumers.kinds.kinds_schema`)."""
    return kinds_schema(STRUCTURED_KINDS)


class InvalidAnswer(HandlerError):
    """The model's answer did not validate against the task's schema, twice."""

    retriable = False


class StructuredOptions(MediaOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-entry overrides of `gateway_settings.kafka.proxy`, the answer's length cap, and
    what image references may name."""

    # From `MediaOptions`: `config` (a None here is the process's config; none known, as when
    # embedded: references refused), allowed_roots, fetch_allow, fetch_max_bytes and the
    # proxy overrides url, timeout_s and provider.
    max_tokens: Annotated[int, msgspec.Meta(gt=0)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None


def retry_prompt(error: str) -> str:
    """The user message that sends an answer back with its validation error."""
    return (
        f"Your previous answer did not validate: {error}. "
        "Answer again with JSON matching the schema."
    )


@dataclass(frozen=True, slots=True)
class StructuredTask(Generic[Req, Out, Ans]):
    """One structured task: its kind, the answer Struct, how to ask, how to wrap the answer.

    `schema` is what is sent as `response_format`; it defaults to the answer's own schema
    (the only sensible value outside tests that check validation itself).
    """

    kind: EventKind[Req, Out]
    answer: type[Ans]
    instructions: str
    # The request and its images (resolved into URLs, in order) -> the user message's parts.
    prompt: Callable[[Req, list[str]], list[TextPart | ImagePart]]
    payload: Callable[..., Out]
    schema: dict[str, Any] = field(default_factory=dict)
    # The request's images, as it names them (URLs or references).
    images: Callable[[Req], Sequence[ImageInput]] = lambda _event: ()

    def response_format(self) -> dict[str, Any]:
        """The `response_format` sent with every ask of this task."""
        return {
            "type": "json_schema",
            "json_schema": {
                "name": self.answer.__name__,
                "schema": self.schema or answer_schema(self.answer),
                "strict": True,
            },
        }


def _images(urls: list[str]) -> list[TextPart | ImagePart]:
    return [ImagePart(image_url=ImageURL(url=url)) for url in urls]


def _caption_prompt(event: CaptionRequested, urls: list[str]) -> list[TextPart | ImagePart]:
    text = "Describe the product in these images."
    if event.context:
        text += f"\nKnown about the product: {event.context}"
    return [TextPart(text=text), *_images(urls)]


def _styling_prompt(event: StylingRequested, urls: list[str]) -> list[TextPart | ImagePart]:
    lines = [f"Suggest {event.outfits} outfit(s) built around: {event.item}"]
    if event.occasion:
        lines.append(f"Occasion: {event.occasion}")
    lines += [f"Constraint: {c}" for c in event.constraints]
    return [TextPart(text="\n".join(lines)), *_images(urls)]


def _analysis_prompt(event: AnalysisRequested, urls: list[str]) -> list[TextPart | ImagePart]:
    text = f"{len(urls)} image(s), numbered from 0 in order. Question: {event.question}"
    return [TextPart(text=text), *_images(urls)]


def _visibility_prompt(event: VisibilityRequested, urls: list[str]) -> list[TextPart | ImagePart]:
    criteria = "\n".join(f"- {c}" for c in event.criteria)
    text = f"Keep the image only if it meets every criterion:\n{criteria}"
    return [TextPart(text=text), *_images(urls)]


CAPTION_TASK = StructuredTask(
    kind=CAPTION,
    answer=ProductCaption,
    instructions="You write product descriptions for a fashion catalogue's training data.",
    prompt=_caption_prompt,
    payload=lambda answer, **acc: Caption(caption=answer, **acc),
    images=lambda event: event.images,
)
STYLING_TASK = StructuredTask(
    kind=STYLING,
    answer=StylingSuggestions,
    instructions="You are a fashion stylist; every outfit item has a role and a colour.",
    prompt=_styling_prompt,
    payload=lambda answer, **acc: Styling(styling=answer, **acc),
    images=lambda event: event.images,
)
ANALYSIS_TASK = StructuredTask(
    kind=ANALYSIS,
    answer=VisionFindings,
    instructions="You analyse fashion images: one finding per image, then compare them.",
    prompt=_analysis_prompt,
    payload=lambda answer, **acc: VisionAnalysis(analysis=answer, **acc),
    images=lambda event: event.images,
)
VISIBILITY_TASK = StructuredTask(
    kind=VISIBILITY,
    answer=VisibilityDecision,
    instructions="You filter catalogue images: keep or drop, and say why.",
    prompt=_visibility_prompt,
    payload=lambda answer, **acc: Visibility(visibility=answer, **acc),
    images=lambda event: [event.image],
)


def _add_usage(a: Usage | None, b: Usage | None) -> Usage | None:
    if a is None or b is None:
        return a or b
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        total_tokens=a.total_tokens + b.total_tokens,
    )


class StructuredHandler(Proxied[ProxyCompletionHandler], Generic[Req, Out, Ans]):
    """Asks the proxy for `task`'s structured answer and validates it (one re-ask)."""

    def __init__(
        self,
        task: StructuredTask[Req, Out, Ans],
        options: StructuredOptions,
        resources: HandlerResources,
    ) -> None:
        self._task = task
        self.kind = task.kind
        self._options = options
        self._redactor = resources.redactor
        overrides = {
            k: getattr(options, k)
            for k in ("url", "timeout_s", "provider")
            if getattr(options, k) is not None
        }
        self._proxy = ProxyCompletionHandler.from_settings(
            msgspec.structs.replace(resources.settings.proxy, **overrides),
            api_key=resources.proxy_api_key,
            redactor=resources.redactor,
        )
        self._images = ImageUrls.from_options(
            resources,
            config=options.config,
            allowed_roots=options.allowed_roots,
            fetch_allow=options.fetch_allow,
            fetch_max_bytes=options.fetch_max_bytes,
        )
        self._decoder = msgspec.json.Decoder(task.answer, strict=True)
        self._format = task.response_format()

    async def _answer(
        self, event: Req, messages: list[ChatMessage], ctx: HandlerContext, suffix: str = ""
    ) -> tuple[Completion, Ans | str]:
        """One ask of the proxy with `messages`, and its answer validated (else the error).

        `suffix` ends the ask's event id, so the proxy's logs tell a re-ask from the first."""
        ask = CompletionRequested(
            event_id=event.event_id + suffix,
            subject=event.subject,
            task=event.task,
            deadline=event.deadline,
            priority=event.priority,
            messages=messages,
            response_format=self._format,
            max_tokens=self._options.max_tokens,
            temperature=self._options.temperature,
        )
        completion = await self._proxy.handle(ask, ctx)
        return completion, self._validate(completion)

    def _validate(self, completion: Completion) -> Ans | str:
        """The decoded answer, or the validation error (scrubbed) when it does not fit."""
        if completion.content is None:
            return "the answer has no text content"
        try:
            return self._decoder.decode(completion.content)
        except msgspec.ValidationError as exc:
            return self._redactor.scrub(str(exc))
        except msgspec.DecodeError as exc:
            return self._redactor.scrub(f"the answer is not valid JSON ({exc})")

    async def handle(self, event: Req, ctx: HandlerContext) -> Out:
        urls = await self._images.urls(self._task.images(event))
        messages = [
            ChatMessage(role="system", content=self._task.instructions),
            ChatMessage(role="user", content=self._task.prompt(event, urls)),
        ]
        first, answer = await self._answer(event, messages, ctx)
        final, answers = first, 1
        if isinstance(answer, str):
            messages += [
                ChatMessage(role="assistant", content=first.content or ""),
                ChatMessage(role="user", content=retry_prompt(answer)),
            ]
            final, answer = await self._answer(event, messages, ctx, ".revalidate")
            answers = 2
            if isinstance(answer, str):
                raise InvalidAnswer(
                    f"{self._task.kind.name}: the answer did not validate twice: {answer}"
                )
        both = [first, final] if answers == 2 else [first]
        costs = [c.cost_usd for c in both]
        return self._task.payload(
            answer,
            provider=final.provider,
            model=final.model,
            answers=answers,
            images=len(urls),
            usage=_add_usage(first.usage, final.usage) if answers == 2 else first.usage,
            cost_usd=None if None in costs else sum(c for c in costs if c is not None),
            proxy_latency_ms=final.proxy_latency_ms,
            fallback=any(c.fallback for c in both),
            provider_attempts=sum(c.provider_attempts for c in both),
        )


class Captioning(StructuredHandler[CaptionRequested, Caption, ProductCaption]):
    """`caption.requested` -> a product description (`ProductCaption`)."""

    def __init__(self, options: StructuredOptions, resources: HandlerResources) -> None:
        super().__init__(CAPTION_TASK, options, resources)


class Styler(StructuredHandler[StylingRequested, Styling, StylingSuggestions]):
    """`styling.requested` -> outfit suggestions (`StylingSuggestions`)."""

    def __init__(self, options: StructuredOptions, resources: HandlerResources) -> None:
        super().__init__(STYLING_TASK, options, resources)


class VisionAnalyst(StructuredHandler[AnalysisRequested, VisionAnalysis, VisionFindings]):
    """`vision.analysis.requested` -> findings per image and their comparison."""

    def __init__(self, options: StructuredOptions, resources: HandlerResources) -> None:
        super().__init__(ANALYSIS_TASK, options, resources)


class VisibilityFilter(StructuredHandler[VisibilityRequested, Visibility, VisibilityDecision]):
    """`visibility.requested` -> keep or drop, with the reason."""

    def __init__(self, options: StructuredOptions, resources: HandlerResources) -> None:
        super().__init__(VISIBILITY_TASK, options, resources)
