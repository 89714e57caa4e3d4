"""The checks every emulator shares: image inspection, base64, data URLs, per-model limits."""

from __future__ import annotations

import base64

from emulators.http.checks import by_model, decode_base64, inspect_image, parse_data_url


def test_a_real_png_is_inspected_with_its_size(png_bytes: bytes) -> None:
    """A valid PNG reports its format, mime type and pixel size."""
    info = inspect_image(png_bytes)
    assert info is not None
    assert (info.format, info.mime_type, info.width, info.height) == ("png", "image/png", 1, 1)


def test_a_truncated_png_is_not_an_image(png_bytes: bytes) -> None:
    """A PNG cut short (header intact) fails verification like at the provider."""
    assert inspect_image(png_bytes[:40]) is None


def test_a_png_with_a_corrupt_chunk_is_not_an_image(png_bytes: bytes) -> None:
    """A PNG whose data chunk was altered fails its CRC check."""
    broken = bytearray(png_bytes)
    broken[45] ^= 0xFF
    assert inspect_image(bytes(broken)) is None


def test_base64_of_either_alphabet_decodes_and_garbage_does_not() -> None:
    """Standard and URL-safe base64 decode, with or without padding; other text does not."""
    raw = bytes([251, 255, 0, 1])
    assert decode_base64(base64.b64encode(raw).decode()) == raw
    assert decode_base64(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert decode_base64("not base64!") is None
    assert decode_base64(42) is None


def test_data_urls_split_into_media_type_and_payload() -> None:
    """A base64 data URL gives its media type and payload; anything else gives None."""
    assert parse_data_url("data:image/png;base64,QUJD") == ("image/png", "QUJD")
    assert parse_data_url("data:image/png,QUJD") is None
    assert parse_data_url("https://example.com/a.png") is None


def test_the_most_specific_model_family_wins() -> None:
    """A dated model name takes the limit of its longest matching family, else the default."""
    table = {"gpt-4o": 128_000, "gpt-4o-mini": 64_000, "gpt-4": 8_192}
    assert by_model("gpt-4o-mini-2024-07-18", table, 1) == 64_000
    assert by_model("gpt-4o-2024-08-06", table, 1) == 128_000
    assert by_model("gpt-4-0613", table, 1) == 8_192
    assert by_model("o3", table, 1) == 1
