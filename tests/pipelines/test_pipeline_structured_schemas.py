"""The structured tasks' schemas, strict answer decoding, events and handler configuration."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from caption_support import CAPTION

from consumers.handler_config import build_registry
from consumers.settings import HandlerSpec, load_kafka_settings
from core.config import ConfigError
from pipelines._structured_schemas import (
    CaptionRequested,
    CaptionSucceeded,
    ProductCaption,
    StylingSuggestions,
    VisibilityDecision,
    VisibilityFailed,
    VisionFindings,
    answer_schema,
)
from pipelines.structured import (
    CAPTION_TASK,
    STRUCTURED_KINDS,
    STYLING_TASK,
    Captioning,
    event_schemas,
    retry_prompt,
)
from schemas import ErrorInfo, EventCodec

FACTORIES = {
    "pipelines.structured:Captioning": "captioning",
    "pipelines.structured:Styler": "styling",
    "pipelines.structured:VisionAnalyst": "vision-analysis",
    "pipelines.structured:VisibilityFilter": "visibility",
}


@pytest.mark.parametrize(
    "answer", [ProductCaption, StylingSuggestions, VisionFindings, VisibilityDecision]
)
def test_every_answer_field_is_required_and_no_other_allowed(answer: Any) -> None:
    """Answer schemas require every field and forbid extras, as strict structured output needs."""
    schema = answer_schema(answer)
    assert schema["type"] == "object" and "$ref" not in schema
    assert sorted(schema["required"]) == sorted(schema["properties"])
    assert schema["additionalProperties"] is False
    for nested in schema.get("$defs", {}).values():
        assert sorted(nested["required"]) == sorted(nested["properties"])


def test_caption_schema_names_its_vocabularies() -> None:
    """Category, pattern and fit are closed enums a training set can rely on."""
    props = answer_schema(ProductCaption)["properties"]
    assert "dresses" in props["category"]["enum"] and "other" in props["category"]["enum"]
    assert {"solid", "striped", "floral"} <= set(props["pattern"]["enum"])
    assert "not_applicable" in props["fit"]["enum"]
    assert props["colors"]["minItems"] == 1


def test_outfit_items_have_a_role_from_a_closed_set() -> None:
    """An outfit item's role is an enum in the styling schema's nested definitions."""
    item = answer_schema(StylingSuggestions)["$defs"]["OutfitItem"]
    assert {"top", "bottom", "footwear"} <= set(item["properties"]["role"]["enum"])


def test_the_schema_sent_is_the_schema_validated() -> None:
    """response_format carries the answer Struct's own schema, strict."""
    sent = CAPTION_TASK.response_format()["json_schema"]
    assert sent["schema"] == answer_schema(ProductCaption) and sent["strict"] is True
    assert STYLING_TASK.response_format()["json_schema"]["name"] == "StylingSuggestions"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"fit": None}, "fit"),
        ({"category": "hats"}, "category"),
        ({"colors": []}, "colors"),
        ({"brand": "x"}, "brand"),
    ],
)
def test_a_nonconforming_caption_fails_naming_the_field(change: dict[str, Any], named: str) -> None:
    """Strict decoding rejects a missing, off-vocabulary, empty or unknown field by name."""
    body = {k: v for k, v in {**CAPTION, **change}.items() if v is not None}
    with pytest.raises(msgspec.ValidationError, match=named):
        msgspec.json.decode(msgspec.json.encode(body), type=ProductCaption, strict=True)


def test_a_conforming_caption_decodes() -> None:
    """The example caption is valid, so the rejections above are about their change."""
    caption = msgspec.json.decode(msgspec.json.encode(CAPTION), type=ProductCaption)
    assert caption.category == "dresses" and caption.colors == ["red"]


def test_the_retry_message_carries_the_error() -> None:
    """The re-ask quotes the validation error and asks for schema-conforming JSON."""
    text = retry_prompt("Object missing required field `fit`")
    assert text.startswith("Your previous answer did not validate: Object missing")
    assert text.endswith("Answer again with JSON matching the schema.")


def test_kinds_round_trip_through_the_event_codec() -> None:
    """The four kinds' events encode and decode with their own tags."""
    codec = EventCodec(
        requests=[k.request for k in STRUCTURED_KINDS],
        results=[t for k in STRUCTURED_KINDS for t in (k.succeeded, k.failed)],
    )
    request = CaptionRequested(
        event_id=str(uuid.uuid4()), subject="p1", task="captioning", images=["https://x.test/a"]
    )
    assert codec.decode_request(codec.encode(request)) == request
    result = CaptionSucceeded(
        event_id="e.result",
        request_id="e",
        subject="p1",
        task="captioning",
        caption=msgspec.convert(CAPTION, ProductCaption),
        provider="anthropic",
        model="claude",
    )
    assert codec.decode_result(codec.encode(result)) == result
    failed = VisibilityFailed(
        event_id="v.result",
        request_id="v",
        subject="p2",
        task="visibility",
        error=ErrorInfo(type="InvalidAnswer", message="at `$.reason`"),
    )
    assert b'"type":"visibility.failed"' in codec.encode(failed)
    assert sorted(k.name for k in STRUCTURED_KINDS) == [
        "caption.requested",
        "styling.requested",
        "visibility.requested",
        "vision.analysis.requested",
    ]


def test_an_image_reference_must_be_a_url() -> None:
    """A request whose image is neither http(s) nor a data: URL is refused by the decoder."""
    codec = EventCodec(requests=[CaptionRequested])
    body = {"type": "caption.requested", "event_id": "e", "subject": "s", "task": "captioning"}
    with pytest.raises(msgspec.ValidationError, match="images"):
        codec.decode_request(msgspec.json.encode({**body, "images": ["file:///etc/passwd"]}))


def test_the_event_schema_document_covers_the_kinds() -> None:
    """The published schema has every structured request and result under its tag."""
    document = event_schemas()
    assert {"CaptionRequested", "VisibilitySucceeded", "AnalysisFailed"} <= set(document["$defs"])
    mapping = document["properties"]["results"]["discriminator"]["mapping"]
    assert mapping["vision.analysis.succeeded"].endswith("/AnalysisSucceeded")


def test_the_factories_build_from_the_handlers_config() -> None:
    """Each factory named in `handlers:` registers its kind for its task."""
    specs = [
        HandlerSpec(factory=f, tasks=[t], options={"timeout_s": 30}) for f, t in FACTORIES.items()
    ]
    settings = msgspec.structs.replace(load_kafka_settings(None), handlers=specs)
    registry = build_registry(settings, proxy_api_key=None)
    assert {k.name for k in registry.kinds()} >= {k.name for k in STRUCTURED_KINDS}
    handler = registry.resolve(
        CaptionRequested(event_id="e", subject="s", task="captioning", images=["https://x/a"])
    )
    assert isinstance(handler, Captioning) and handler.max_deliveries >= 1


@pytest.mark.parametrize(
    ("options", "named"), [({"max_tokens": 0}, "max_tokens"), ({"model": "x"}, "model")]
)
def test_bad_options_stop_start_up_naming_them(options: dict[str, Any], named: str) -> None:
    """Options are typed: a bad value or an unknown key is a start-up error naming it."""
    spec = HandlerSpec(factory="pipelines.structured:Styler", tasks=["styling"], options=options)
    settings = msgspec.structs.replace(load_kafka_settings(None), handlers=[spec])
    with pytest.raises(ConfigError, match=named):
        build_registry(settings, proxy_api_key=None)
