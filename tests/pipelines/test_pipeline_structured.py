"""Structured-text handlers against the emulators through a real in-process proxy."""

from __future__ import annotations

import re
import typing
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest
from structured_support import context, png_data_url, resources_for

from consumers.errors import ProviderBadRequest
from pipelines._structured_schemas import (
    AnalysisRequested,
    CaptionRequested,
    Category,
    StylingRequested,
    Visibility,
    VisibilityDecision,
    VisibilityRequested,
    answer_schema,
)
from pipelines.structured import (
    VISIBILITY,
    VISIBILITY_TASK,
    Captioning,
    InvalidAnswer,
    StructuredHandler,
    StructuredOptions,
    StructuredTask,
    Styler,
    VisibilityFilter,
    VisionAnalyst,
)


@pytest.fixture
async def started(text_proxy: tuple[Any, Path]) -> AsyncIterator[Any]:
    """Factory: a started handler of `cls` (or a task) pointed at the module's proxy over the
    emulators (conftest.py), stopped after."""
    proxy, _ = text_proxy
    handlers: list[Any] = []

    async def build(cls: Any, options: StructuredOptions | None = None) -> Any:
        handler = cls(options or StructuredOptions(), resources_for(proxy))
        await handler.start()
        handlers.append(handler)
        return handler

    yield build
    for handler in handlers:
        await handler.stop()


def _ids() -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "subject": f"product-{uuid.uuid4().hex[:8]}"}


def _visibility(criteria: str = "no people in the picture") -> VisibilityRequested:
    return VisibilityRequested(
        **_ids(), task="visibility", image=png_data_url("white"), criteria=[criteria]
    )


def _checked_task(pattern: str) -> StructuredTask[VisibilityRequested, Visibility, Any]:
    """The visibility task validating `reason` against `pattern`, while the schema sent to
    the model is the ordinary one: the model's schema-valid answers can then fail validation."""

    # Built at run time: the pattern is a value, so a class body's annotation cannot name it.
    decision = msgspec.defstruct(
        "Decision",
        [("keep", bool), ("reason", Annotated[str, msgspec.Meta(pattern=pattern)])],
        frozen=True,
        kw_only=True,
        forbid_unknown_fields=True,
    )

    def payload(answer: Any, **accounting: Any) -> Visibility:
        decision = VisibilityDecision(keep=answer.keep, reason=answer.reason)
        return Visibility(visibility=decision, **accounting)

    return StructuredTask(
        kind=VISIBILITY,
        answer=decision,
        instructions=VISIBILITY_TASK.instructions,
        prompt=VISIBILITY_TASK.prompt,
        payload=payload,
        images=VISIBILITY_TASK.images,
        schema=answer_schema(VisibilityDecision),
    )


def _task_handler(task: StructuredTask[Any, Any, Any]) -> Any:
    def build(options: StructuredOptions, resources: Any) -> StructuredHandler[Any, Any, Any]:
        return StructuredHandler(task, options, resources)

    return build


async def test_a_caption_is_a_validated_product_description(started: Any) -> None:
    """Captioning answers with a ProductCaption from one answer, accounted like a result."""
    handler = await started(Captioning)
    event = CaptionRequested(
        **_ids(), task="captioning", images=[png_data_url("red")], context="a red silk dress"
    )
    caption = await handler.handle(event, context())
    assert caption.answers == 1 and caption.images == 1
    assert caption.caption.title and caption.caption.colors
    assert caption.caption.category in typing.get_args(Category)
    assert caption.provider == "anthropic" and caption.usage is not None
    assert caption.cost_usd is not None and caption.cost_usd > 0
    assert (caption.fallback, caption.provider_attempts) == (False, 1)


async def test_a_caption_served_by_the_fallback_says_so(
    started: Any, anthropic_emulator: Any
) -> None:
    """Claude failing with 503s, Gemini answers: the caption says fallback, after 4 calls."""
    handler = await started(Captioning)
    event = CaptionRequested(**_ids(), task="captioning", images=[png_data_url("red")])
    anthropic_emulator.set_fault("503")
    try:
        caption = await handler.handle(event, context())
    finally:
        anthropic_emulator.clear_faults()
    assert caption.provider == "gemini" and caption.fallback is True
    assert caption.provider_attempts == 4  # three on Claude, one on Gemini
    assert caption.cost_usd is not None and caption.cost_usd > 0


async def test_each_task_answers_with_its_own_structure(started: Any) -> None:
    """Styling, vision analysis and visibility each decode into their own answer Struct."""
    styler, analyst, keeper = (
        await started(Styler),
        await started(VisionAnalyst),
        await started(VisibilityFilter),
    )
    looks = await styler.handle(
        StylingRequested(**_ids(), task="styling", item="white linen shirt", occasion="beach"),
        context(),
    )
    assert looks.styling.outfits and all(o.items and o.rationale for o in looks.styling.outfits)
    images = [png_data_url("red"), png_data_url("blue")]
    analysis = await analyst.handle(
        AnalysisRequested(**_ids(), task="vision-analysis", images=images, question="Same?"),
        context(),
    )
    assert analysis.images == 2 and analysis.analysis.findings and analysis.analysis.comparison
    decision = await keeper.handle(_visibility(), context())
    assert isinstance(decision.visibility.keep, bool) and decision.visibility.reason
    assert decision.provider == "gemini"


async def test_an_answer_failing_validation_is_asked_again_once(started: Any) -> None:
    """A first answer that does not validate is sent back with its error; the second counts."""
    plain = await started(VisibilityFilter)
    event = _visibility("no logos")
    first = await plain.handle(event, context())
    # Refuse exactly the reason the model gives first (its answers follow from the prompt).
    refused = first.visibility.reason
    handler = await started(_task_handler(_checked_task(f"^(?!{re.escape(refused)}$)")))
    second = await handler.handle(event, context())
    assert second.answers == 2 and second.visibility.reason != refused
    assert first.usage is not None and second.usage is not None
    assert second.usage.prompt_tokens >= 2 * first.usage.prompt_tokens  # both calls counted
    assert second.cost_usd is not None and first.cost_usd is not None
    assert second.cost_usd > first.cost_usd


async def test_an_answer_failing_twice_fails_naming_the_field(started: Any) -> None:
    """Two answers that do not validate end in a non-retriable error naming the field."""
    handler = await started(_task_handler(_checked_task("^never$")))
    with pytest.raises(InvalidAnswer, match=r"\$\.reason") as raised:
        await handler.handle(_visibility(), context())
    assert not raised.value.retriable
    assert "visibility.requested" in str(raised.value) and "twice" in str(raised.value)


async def test_a_truncated_answer_is_malformed_json_and_fails(started: Any) -> None:
    """An answer cut by max_tokens is not JSON at all; after the re-ask it fails as such."""
    handler = await started(VisibilityFilter, StructuredOptions(max_tokens=3))
    with pytest.raises(InvalidAnswer, match="not valid JSON"):
        await handler.handle(_visibility(), context())


async def test_proxy_errors_keep_the_consumers_error_mapping(started: Any) -> None:
    """A request the provider refuses maps to the consumers' ProviderBadRequest, not a retry."""
    handler = await started(Captioning)
    broken = "data:image/png;base64,iVBORw0KGgo="  # a PNG signature and nothing else
    event = CaptionRequested(**_ids(), task="captioning", images=[broken])
    with pytest.raises(ProviderBadRequest, match="does not decode"):
        await handler.handle(event, context())
