"""Specifications of the redactor: known secrets and credential shapes masked in text, bytes
and structured log fields, and nothing else touched."""

import msgspec

from core.redact import MASK, Redactor


def test_added_secret_is_masked_inside_text() -> None:
    """A secret the redactor was given never appears in scrubbed text."""
    redactor = Redactor(["my-very-private-key-123"])
    assert redactor.scrub("calling with my-very-private-key-123") == f"calling with {MASK}"


def test_secret_learnt_later_is_masked_from_then_on() -> None:
    """`add` after construction extends what is masked."""
    redactor = Redactor()
    redactor.add("late-arriving-key-9f8e")
    assert "late-arriving-key-9f8e" not in redactor.scrub("echo late-arriving-key-9f8e")


def test_short_and_empty_values_are_ignored() -> None:
    """Values under 6 characters (and None) are not secrets worth shredding text for."""
    redactor = Redactor(["abc", "", None])
    assert len(redactor) == 0
    assert redactor.scrub("abc def") == "abc def"


def test_a_secret_containing_another_is_masked_whole() -> None:
    """The longer of two overlapping secrets is masked first, leaving no tail behind."""
    redactor = Redactor(["secret-key", "secret-key-with-suffix"])
    assert redactor.scrub("x secret-key-with-suffix y") == f"x {MASK} y"


def test_provider_key_shapes_are_masked_without_registration() -> None:
    """Anthropic, OpenAI and Google key shapes, bearer values and ?key= are masked unasked."""
    text = (
        "sk-ant-api03-abcdefgh sk-proj-abcdefghijklmnopqrstu AIzaSyA1234567890123456789012 "
        "Bearer abcdefgh12 ?key=zzz"
    )
    out = Redactor().scrub(text)
    for leaked in ("sk-ant-api03-abcdefgh", "sk-proj-abcdefghijklmnopqrstu", "AIzaSyA", "zzz"):
        assert leaked not in out
    assert "abcdefgh12" not in out


def test_words_that_merely_contain_a_prefix_survive() -> None:
    """A word with "sk-" inside it is not a key: "desk-organizer-with-drawers" stays."""
    assert Redactor().scrub("a desk-organizer-with-drawers") == "a desk-organizer-with-drawers"


def test_bytes_are_scrubbed_and_stay_valid_json() -> None:
    """An encoded event echoing a key decodes after scrubbing, with the key masked."""
    redactor = Redactor(["plain-proxy-key-31c7d9"])
    raw = msgspec.json.encode({"error": {"message": "bad key plain-proxy-key-31c7d9"}})
    decoded = msgspec.json.decode(redactor.scrub_bytes(raw))
    assert decoded == {"error": {"message": f"bad key {MASK}"}}


def test_bytes_keep_prose_that_only_text_scrubbing_would_touch() -> None:
    """A model's answer saying "Key takeaways" is published as written."""
    raw = b'{"content":"Key takeaways: linen breathes"}'
    assert Redactor().scrub_bytes(raw) == raw


def test_secret_named_fields_are_masked_in_mappings() -> None:
    """Fields named like credentials are masked whatever their value looks like."""
    out = Redactor().scrub_value(
        {"api_key": "short1", "headers": {"Authorization": "x"}, "model": "m"}
    )
    assert out == {"api_key": MASK, "headers": {"Authorization": MASK}, "model": "m"}


def test_log_processor_scrubs_every_field_and_the_event() -> None:
    """The structlog processor masks the event text and nested values alike."""
    redactor = Redactor(["plain-master-key-0a1b2c"])
    line = redactor.log_processor(
        None,
        "warning",
        {"event": "saw plain-master-key-0a1b2c", "detail": ["plain-master-key-0a1b2c"]},
    )
    assert line == {"event": f"saw {MASK}", "detail": [MASK]}
