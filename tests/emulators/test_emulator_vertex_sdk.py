"""The Vertex AI emulator through the official google-genai SDK in Vertex mode, unchanged."""

from __future__ import annotations

import io

import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from emulators.testing import VertexHandle
from emulators.vertex.images import garment_region

PROJECT = "fashion-test"
LOCATION = "us-central1"
IMAGE_MODEL = "gemini-3-pro-image-preview"
SKIN = (222, 184, 160)
RED = (200, 20, 30)
BLUE = (20, 40, 210)


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    """A solid PNG of ``colour``."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def garment_on_white(colour: tuple[int, int, int]) -> bytes:
    """A product photo: a garment-coloured block on a white backdrop."""
    image = Image.new("RGB", (80, 80), (255, 255, 255))
    image.paste(colour, (20, 10, 60, 75))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def client(vertex_em: VertexHandle) -> genai.Client:
    """A Vertex-mode client whose service account's token_uri is the emulator."""
    return genai.Client(
        vertexai=True,
        project=PROJECT,
        location=LOCATION,
        credentials=vertex_em.credentials(PROJECT),
        http_options={"base_url": vertex_em.url},
    )


def image_config(ratio: str, size: str = "1K") -> types.GenerateContentConfig:
    """Image-only output at ``ratio`` and ``size``."""
    return types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=types.ImageConfig(aspect_ratio=ratio, image_size=size),
    )


def first_image(result: types.GenerateContentResponse) -> Image.Image:
    """The first inline image of the first candidate, decoded."""
    assert result.candidates and result.candidates[0].content
    for part in result.candidates[0].content.parts or []:
        if part.inline_data is not None and part.inline_data.data:
            return Image.open(io.BytesIO(part.inline_data.data))
    raise AssertionError("no image part")


@pytest.mark.parametrize(("ratio", "w", "h"), [("16:9", 16, 9), ("2:3", 2, 3), ("21:9", 21, 9)])
def test_image_output_follows_aspect_ratio(
    client: genai.Client, ratio: str, w: int, h: int
) -> None:
    """generate_content with IMAGE output returns a decodable PNG of exactly the asked ratio."""
    result = client.models.generate_content(
        model=IMAGE_MODEL, contents="A linen summer dress", config=image_config(ratio)
    )
    image = first_image(result)
    assert image.format == "PNG"
    assert image.width * h == image.height * w
    assert 0.8e6 < image.width * image.height <= 1024 * 1024


def test_image_size_grows_the_image(client: genai.Client) -> None:
    """imageSize 2K and 4K give larger images than 1K, each billed as image tokens."""
    areas = []
    for size in ("1K", "2K", "4K"):
        result = client.models.generate_content(
            model=IMAGE_MODEL, contents="A wool coat", config=image_config("1:1", size)
        )
        image = first_image(result)
        areas.append(image.width * image.height)
        usage = result.usage_metadata
        assert usage is not None and usage.candidates_tokens_details
        assert usage.candidates_tokens_details[0].modality == types.MediaModality.IMAGE
    assert areas[0] < areas[1] < areas[2]


def test_images_are_deterministic_and_follow_the_prompt(client: genai.Client) -> None:
    """The same request gives the same image; another prompt gives another image."""

    def bytes_for(prompt: str) -> bytes:
        result = client.models.generate_content(
            model=IMAGE_MODEL, contents=prompt, config=image_config("1:1")
        )
        return first_image(result).tobytes()

    assert bytes_for("a red scarf") == bytes_for("a red scarf")
    assert bytes_for("a red scarf") != bytes_for("a blue scarf")


def test_text_and_image_modalities_give_both_parts(client: genai.Client) -> None:
    """TEXT+IMAGE answers with a text part and an image part."""
    result = client.models.generate_content(
        model=IMAGE_MODEL,
        contents="Sketch a trench coat",
        config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"]),
    )
    assert (result.text or "").startswith(f"[vertex-emulator {IMAGE_MODEL}]")
    assert first_image(result).size == (1024, 1024)


def test_multi_image_edit_uses_the_garments(client: genai.Client, vertex_em: VertexHandle) -> None:
    """A person photo plus two garments: the output keeps the person and shows both colours."""
    person = types.Part.from_bytes(data=png(SKIN, (300, 450)), mime_type="image/png")
    red = types.Part.from_bytes(data=garment_on_white(RED), mime_type="image/png")
    blue = types.Part.from_bytes(data=garment_on_white(BLUE), mime_type="image/png")
    result = client.models.generate_content(
        model=IMAGE_MODEL,
        contents=[person, red, blue, "Dress the person in the two garments"],
        config=types.GenerateContentConfig(response_modalities=["IMAGE"]),
    )
    image = first_image(result).convert("RGB")
    assert image.width * 3 == image.height * 2  # the person photo's 2:3
    left, top, right, bottom = garment_region(*image.size)
    middle = (top + bottom) // 2
    assert image.getpixel((left + 2, middle)) == RED
    assert image.getpixel((right - 3, middle)) == BLUE
    assert image.getpixel((2, image.height - 3)) == SKIN
    assert vertex_em.calls()[-1]["mime_types"] == ["image/png"] * 3


def test_stream_with_image_output(client: genai.Client) -> None:
    """streamGenerateContent (SSE) delivers the text and then the image."""
    chunks = list(
        client.models.generate_content_stream(
            model=IMAGE_MODEL,
            contents="Show a pleated skirt with many folds",
            config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"]),
        )
    )
    assert len(chunks) > 1
    text = "".join(chunk.text or "" for chunk in chunks)
    assert text.startswith(f"[vertex-emulator {IMAGE_MODEL}]")
    assert first_image(chunks[-1]).size == (1024, 1024)


def test_text_and_vision_answers(client: genai.Client) -> None:
    """A vision request on gemini-3-pro counts its image, like the Gemini API."""
    image = types.Part.from_bytes(data=png(RED), mime_type="image/png")
    result = client.models.generate_content(
        model="gemini-3-pro-preview", contents=[image, "Describe the outfit"]
    )
    assert "1 image(s); re: Describe the outfit" in (result.text or "")


def try_on_source(product: bytes) -> types.RecontextImageSource:
    """A person photo and one product photo."""
    return types.RecontextImageSource(
        person_image=types.Image(image_bytes=png(SKIN, (200, 300)), mime_type="image/png"),
        product_images=[
            types.ProductImage(
                product_image=types.Image(image_bytes=product, mime_type="image/png")
            )
        ],
    )


@pytest.mark.parametrize("model", ["virtual-try-on-001", "virtual-try-on-preview-08-04"])
def test_recontext_image_virtual_try_on(
    client: genai.Client, vertex_em: VertexHandle, model: str
) -> None:
    """recontext_image returns number_of_images try-ons, each wearing the garment's colour."""
    result = client.models.recontext_image(
        model=model,
        source=try_on_source(garment_on_white(BLUE)),
        config=types.RecontextImageConfig(
            number_of_images=3,
            seed=7,
            add_watermark=False,
            safety_filter_level=types.SafetyFilterLevel.BLOCK_ONLY_HIGH,
            person_generation=types.PersonGeneration.ALLOW_ADULT,
            output_mime_type="image/jpeg",
        ),
    )
    assert result.generated_images is not None and len(result.generated_images) == 3
    decoded = []
    for generated in result.generated_images:
        assert generated.image is not None and generated.image.image_bytes
        image = Image.open(io.BytesIO(generated.image.image_bytes))
        assert image.format == "JPEG"
        left, top, right, bottom = garment_region(*image.size)
        pixel = image.convert("RGB").getpixel(((left + right) // 2, (top + bottom) // 2))
        assert isinstance(pixel, tuple)
        assert all(abs(a - b) < 12 for a, b in zip(pixel, BLUE, strict=True))
        decoded.append(generated.image.image_bytes)
    assert len(set(decoded)) == 3
    parameters = vertex_em.calls()[-1]["parameters"]
    assert parameters["sampleCount"] == 3
    assert parameters["safetySetting"] == "BLOCK_ONLY_HIGH"


def test_try_on_seed_needs_watermark_off(client: genai.Client) -> None:
    """A seed with the default addWatermark (true) is a 400, as on Vertex."""
    with pytest.raises(errors.ClientError) as caught:
        client.models.recontext_image(
            model="virtual-try-on-001",
            source=try_on_source(png(RED)),
            config=types.RecontextImageConfig(seed=1),
        )
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"


def test_try_on_filtered_by_forced_marker(client: genai.Client, vertex_em: VertexHandle) -> None:
    """A forced [[rai:...]] marker replaces each prediction by its raiFilteredReason."""
    vertex_em.force_block("[[rai:Filtered: person image]]")
    result = client.models.recontext_image(
        model="virtual-try-on-001",
        source=try_on_source(png(RED)),
        config=types.RecontextImageConfig(number_of_images=2),
    )
    assert result.generated_images is not None
    assert [g.rai_filtered_reason for g in result.generated_images] == [
        "Filtered: person image"
    ] * 2
    assert vertex_em.calls()[-1]["outcome"] == "rai"
