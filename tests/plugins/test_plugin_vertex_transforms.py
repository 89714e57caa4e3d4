"""The Vertex plugin's pure transforms: sizes to imageConfig, edit forms and model limits, the
order of a multi-image edit, the try-on body, answers and refusals, and per-group options."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from plugins.vertex import (
    ModelOptions,
    VertexConfigError,
    VertexContentPolicy,
    VertexInvalidRequest,
    parse_image_request,
    parse_model_options,
)
from plugins.vertex.edits import check_for_model, parse_edit_request, predict_body, try_on_images
from plugins.vertex.transforms import (
    generate_content_body,
    images_of_answer,
    model_url,
    openai_images,
)

GEMINI = "vertex/gemini-3-pro-image-preview"
TRY_ON = "vertex/virtual-try-on-001"
SAFETY = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "threshold": "BLOCK_ONLY_HIGH"},
    {
        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
        "threshold": "BLOCK_NONE",
        "method": "SEVERITY",
    },
]


def _png(size: tuple[int, int] = (32, 48), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("size", "ratio", "image_size"),
    [
        ("1024x1024", "1:1", "1K"),
        ("1536x1024", "3:2", "2K"),
        ("1024x1536", "2:3", "2K"),
        ("1792x1024", "16:9", "2K"),
        ("1024x1792", "9:16", "2K"),
        ("768x1024", "3:4", "1K"),
        ("3360x1440", "21:9", "4K"),
        ("landscape_16_9", "16:9", "1K"),
    ],
)
def test_openai_sizes_map_to_aspect_ratio_and_image_size(
    size: str, ratio: str, image_size: str
) -> None:
    """Each OpenAI size becomes the matching imageConfig aspect ratio and image size."""
    request = parse_image_request({"prompt": "a coat", "size": size})
    assert (request.aspect_ratio, request.image_size) == (ratio, image_size)
    config = generate_content_body(request, ModelOptions())["generationConfig"]["imageConfig"]
    assert config == {"aspectRatio": ratio, "imageSize": image_size}


def test_explicit_aspect_ratio_and_image_size_are_sent_as_given() -> None:
    """Extra fields aspect_ratio and image_size reach imageConfig unchanged."""
    request = parse_image_request({"prompt": "a coat", "aspect_ratio": "4:5", "image_size": "4K"})
    body = generate_content_body(request, ModelOptions())
    assert body["generationConfig"]["imageConfig"] == {"aspectRatio": "4:5", "imageSize": "4K"}
    assert body["generationConfig"]["responseModalities"] == ["IMAGE"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"size": "1000x300"}, "size"),
        ({"size": "8192x8192"}, "size"),
        ({"size": "big"}, "size"),
        ({"aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"image_size": "1k"}, "image_size"),
        ({"size": "1024x1024", "aspect_ratio": "16:9"}, "aspect_ratio"),
        ({"n": 5}, "n"),
        ({"prompt": " "}, "prompt"),
        ({"response_format": "png"}, "response_format"),
    ],
)
def test_unsupported_generation_input_names_its_parameter(body: dict[str, Any], param: str) -> None:
    """A size or ratio Vertex cannot make, and other bad fields, are refused naming them."""
    with pytest.raises(VertexInvalidRequest) as caught:
        parse_image_request({"prompt": "a coat", **body})
    assert caught.value.param == param


def test_a_seed_moves_by_the_image_index_and_safety_settings_are_sent() -> None:
    """Image i of n is asked with seed + i, and the group's safety settings ride along."""
    request = parse_image_request({"prompt": "a coat", "n": 3, "seed": 40})
    options = parse_model_options("g", GEMINI, {"safety_settings": SAFETY})
    body = generate_content_body(request, options, index=2)
    assert body["generationConfig"]["seed"] == 42
    assert body["safetySettings"] == SAFETY


def test_a_try_on_edit_sends_the_person_then_garments_then_the_instruction() -> None:
    """The parts are person, garments in order, then text naming the images by position."""
    request = parse_edit_request(
        {"prompt": "dress the person in these", "n": "1"},
        [_png(colour=(1, 1, 1)), _png(colour=(2, 2, 2)), _png(colour=(3, 3, 3))],
        None,
    )
    parts = generate_content_body(request, ModelOptions())["contents"][0]["parts"]
    assert [p["inlineData"]["data"] for p in parts[:3]] == [i.data for i in request.images]
    assert parts[3]["text"].startswith("Image 1 is the person; images 2 to 3 are garments")
    assert parts[3]["text"].endswith("dress the person in these")


@pytest.mark.parametrize(
    ("images", "param"),
    [
        ([], "image"),
        ([b"not an image at all"], "image"),
        ([_png(), b"GIF89a-broken"], "image[1]"),
    ],
)
def test_bad_edit_images_are_refused_naming_the_image(images: list[bytes], param: str) -> None:
    """No image, or one that does not decode, is refused naming which."""
    with pytest.raises(VertexInvalidRequest) as caught:
        parse_edit_request({"prompt": "x"}, images, None)
    assert caught.value.param == param


def test_model_limits_refuse_too_many_images_and_too_large_ones() -> None:
    """Gemini takes 14 images; the try-on model needs a person and a garment; a group may
    lower the per-image size limit."""
    fifteen = parse_edit_request({"prompt": "x"}, [_png()] * 15, None)
    with pytest.raises(VertexInvalidRequest, match="at most 14 images"):
        check_for_model(fifteen, GEMINI, ModelOptions())
    single = parse_edit_request({"prompt": "x"}, [_png()], None)
    with pytest.raises(VertexInvalidRequest, match="garment"):
        check_for_model(single, TRY_ON, ModelOptions())
    tiny = ModelOptions(max_image_mb=0.000001)
    with pytest.raises(VertexInvalidRequest, match="MB") as caught:
        check_for_model(single, GEMINI, tiny)
    assert caught.value.param == "image"


def test_predict_body_has_one_garment_and_the_group_settings() -> None:
    """A try-on step sends the person, one product image, the sample count and settings."""
    request = parse_edit_request({"prompt": "x"}, [_png(), _png(colour=(9, 9, 9))], None)
    options = parse_model_options(
        "t", TRY_ON, {"safety_filter_level": "BLOCK_ONLY_HIGH", "person_generation": "allow_adult"}
    )
    body = predict_body(request.images[0], request.images[1], samples=2, seed=7, options=options)
    instance = body["instances"][0]
    assert instance["personImage"]["image"]["bytesBase64Encoded"] == request.images[0].data
    assert len(instance["productImages"]) == 1
    assert body["parameters"] == {
        "sampleCount": 2,
        "seed": 7,
        "addWatermark": False,
        "safetySetting": "block_only_high",
        "personGeneration": "allow_adult",
    }


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}, "PROHIBITED_CONTENT"),
        ({"candidates": [{"finishReason": "IMAGE_SAFETY"}]}, "IMAGE_SAFETY"),
        ({"candidates": [{"finishReason": "NO_IMAGE"}]}, "NO_IMAGE"),
        (
            {"candidates": [{"content": {"parts": [{"text": "no"}]}, "finishReason": "STOP"}]},
            "NO_IMAGE",
        ),
    ],
)
def test_refusals_become_content_policy_errors_naming_the_reason(
    answer: dict[str, Any], reason: str
) -> None:
    """A blocked prompt, a refusing finish reason or an answer without an image is a
    content-policy error whose message and reason name Google's reason."""
    with pytest.raises(VertexContentPolicy) as caught:
        images_of_answer(answer)
    assert caught.value.reason == reason
    assert reason in caught.value.message


def test_image_parts_are_read_in_both_spellings() -> None:
    """inlineData (camelCase) and inline_data (snake_case) image parts are both read."""
    answer = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"inlineData": {"mimeType": "image/png", "data": "QUJD"}},
                        {"inline_data": {"mime_type": "image/jpeg", "data": "REVG"}},
                    ]
                },
                "finishReason": "STOP",
            }
        ]
    }
    images = images_of_answer(answer)
    assert [(i.mime_type, i.data) for i in images] == [
        ("image/png", "QUJD"),
        ("image/jpeg", "REVG"),
    ]
    request = parse_image_request({"prompt": "x", "response_format": "url"})
    assert openai_images(images, request, 1)["data"][0]["url"] == "data:image/png;base64,QUJD"


def test_a_try_on_answer_with_every_sample_filtered_names_the_filter() -> None:
    """predictions holding only raiFilteredReason become a content-policy error with it."""
    with pytest.raises(VertexContentPolicy) as caught:
        try_on_images({"predictions": [{"raiFilteredReason": "person filtered"}]})
    assert caught.value.reason == "person filtered"


def test_model_urls_use_the_base_or_google_hosts() -> None:
    """The base replaces Google's host; `global` has no region prefix, other locations do."""
    assert model_url("http://e:1/", "p", "global", GEMINI, "generateContent") == (
        "http://e:1/v1/projects/p/locations/global/publishers/google/models/"
        "gemini-3-pro-image-preview:generateContent"
    )
    assert model_url(None, "p", "us-central1", TRY_ON, "predict").startswith(
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/"
    )


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (
            {"safety_settings": [{"category": "HARM_CATEGORY_FASHION", "threshold": "OFF"}]},
            "g.safety_settings[0].category",
        ),
        (
            {
                "safety_settings": [
                    *SAFETY,
                    {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_SOME"},
                ]
            },
            "g.safety_settings[2].threshold",
        ),
        (
            {
                "safety_settings": [
                    {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF", "method": "GUESS"}
                ]
            },
            "g.safety_settings[0].method",
        ),
        ({"safety_filter_level": "block_only_high"}, "g.safety_filter_level"),
    ],
)
def test_bad_group_options_are_refused_naming_the_entry(params: dict[str, Any], named: str) -> None:
    """An unknown category, threshold or method, or a try-on option on Gemini, names itself."""
    with pytest.raises(VertexConfigError) as caught:
        parse_model_options("g", GEMINI, params)
    assert caught.value.param == named
    assert named in caught.value.message
