"""The Fal plugin's pure transforms and its error mapping, without any network."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from plugins.fal import FalInvalidRequest, parse_image_request
from plugins.fal import errors as fal_errors_module
from plugins.fal.errors import FalError, error_from_response, fal_errors
from plugins.fal.transforms import flux_input, megapixels, openai_images, parse_status

LORAS = [{"path": "https://example.com/a.safetensors", "scale": 0.7}, {"path": "http://h/b"}]


def test_two_loras_size_and_n_become_the_flux_input() -> None:
    """LoRAs, an OpenAI size, n and seed map onto Fal's loras, image_size, num_images, seed."""
    request = parse_image_request(
        {"prompt": "red dress", "n": 2, "size": "1536x1024", "seed": 5, "loras": LORAS}
    )
    body = flux_input(request)
    assert body["loras"] == [
        {"path": "https://example.com/a.safetensors", "scale": 0.7},
        {"path": "http://h/b", "scale": 1.0},
    ]
    assert body["image_size"] == {"width": 1536, "height": 1024}
    assert body["num_images"] == 2
    assert body["seed"] == 5
    assert body["sync_mode"] is False


def test_preset_sizes_are_sent_by_name_and_b64_asks_for_inline_images() -> None:
    """1024x1024 is Fal's square_hd preset; b64_json turns on sync_mode."""
    body = flux_input(
        parse_image_request({"prompt": "x", "size": "1024x1024", "response_format": "b64_json"})
    )
    assert body["image_size"] == "square_hd"
    assert body["sync_mode"] is True


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"prompt": None}, "prompt"),
        ({"prompt": "  "}, "prompt"),
        ({"loras": [{"path": "s3://bucket/x"}]}, "loras[0].path"),
        ({"loras": [{"path": "https://a/b", "scale": "high"}]}, "loras[0].scale"),
        ({"loras": [{"path": "https://a/b", "scale": 4.5}]}, "loras[0].scale"),
        ({"n": 5}, "n"),
        ({"size": "huge"}, "size"),
        ({"size": "10x10"}, "size"),
        ({"response_format": "gif"}, "response_format"),
    ],
)
def test_bad_inputs_name_their_parameter(change: dict[str, Any], param: str) -> None:
    """Each invalid input raises FalInvalidRequest (400) naming the offending parameter."""
    with pytest.raises(FalInvalidRequest) as caught:
        parse_image_request({"prompt": "ok", **change})
    assert caught.value.param == param
    assert caught.value.status_code == 400


def test_megapixels_are_rounded_up_per_image() -> None:
    """A 1024x1024 image is billed as 2 megapixels, 512x512 as 1."""
    assert megapixels(parse_image_request({"prompt": "x", "size": "1024x1024"})) == 2
    assert megapixels(parse_image_request({"prompt": "x", "size": "512x512"})) == 1


def test_result_becomes_an_openai_images_response_with_fal_extras() -> None:
    """Fal images become OpenAI `data` entries; seed and NSFW flags ride along."""
    request = parse_image_request({"prompt": "x", "response_format": "b64_json"})
    result = {
        "images": [{"url": "data:image/png;base64,AAAA"}],
        "seed": 9,
        "has_nsfw_concepts": [False],
    }
    answer = openai_images(result, request, 1)
    assert answer["data"] == [{"b64_json": "AAAA", "revised_prompt": None}]
    assert answer["seed"] == 9
    assert answer["has_nsfw_concepts"] == [False]


def test_status_logs_are_read_and_unknown_states_refused() -> None:
    """A status body's log messages are kept; a state outside the protocol is an error."""
    status = parse_status({"status": "IN_PROGRESS", "logs": [{"message": "step 1"}]})
    assert status.logs == ("step 1",)
    with pytest.raises(FalError):
        parse_status({"status": "FAILED", "logs": None})


@pytest.mark.parametrize(
    ("status", "name", "retriable"),
    [
        (400, "FalBadRequest", False),
        (401, "FalAuthError", False),
        (403, "FalAuthError", False),
        (404, "FalNotFound", False),
        (422, "FalValidationError", False),
        (429, "FalRateLimited", True),
        (500, "FalServerError", True),
        (502, "FalServerError", True),
        (503, "FalUnavailable", True),
        (504, "FalTimeout", True),
    ],
)
def test_fal_statuses_map_to_the_error_tree(status: int, name: str, retriable: bool) -> None:
    """Each Fal HTTP status becomes its FalError class, retriable exactly when transient."""
    error = error_from_response(status, {"retry-after": "2"}, '{"detail": "no"}')
    assert type(error).__name__ == name
    assert error.retriable is retriable
    assert error.retry_after_s == 2


def test_validation_detail_is_summarised_in_the_message() -> None:
    """A 422 detail list is turned into 'loc: msg' text."""
    body = '{"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]}'
    assert "prompt: Field required" in error_from_response(422, {}, body).message


@pytest.mark.parametrize(
    ("raised", "name"),
    [
        (httpx.ReadTimeout("slow"), "FalTimeout"),
        (httpx.ConnectError("refused"), "FalUnavailable"),
        (ValueError("not json"), "FalProtocolError"),
    ],
)
def test_transport_failures_are_mapped(raised: Exception, name: str) -> None:
    """httpx's failures and undecodable answers inside fal_errors() become FalErrors."""
    with pytest.raises(FalError) as caught, fal_errors():
        raise raised
    assert type(caught.value).__name__ == name


def test_every_error_class_declares_retriable_and_status() -> None:
    """Each class of the tree says whether it is retriable and which status it answers."""
    classes = [
        value
        for value in vars(fal_errors_module).values()
        if isinstance(value, type) and issubclass(value, FalError)
    ]
    assert len(classes) == 13
    for cls in classes:
        assert isinstance(cls.retriable, bool)
        assert 400 <= cls.status_code < 600
