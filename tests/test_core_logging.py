"""Specifications of the shared logging pipeline's secret redaction."""

from core.logging import SecretRegistry, redact


def test_registered_secret_is_masked_inside_text() -> None:
    """A key registered at start-up never appears in a redacted message."""
    reg = SecretRegistry(["my-very-private-key-123"])
    assert "my-very-private-key-123" not in redact("calling with my-very-private-key-123", reg)


def test_provider_key_shapes_are_masked_without_registration() -> None:
    """Anthropic, OpenAI and Google key shapes are masked even when nobody registered them."""
    reg = SecretRegistry()
    text = (
        "sk-ant-api03-abcdefgh sk-proj-abcdefghijklmnopqrstu AIzaSyA1234567890123456789012 ?key=zzz"
    )
    out = redact(text, reg)
    for leaked in ("sk-ant-api03-abcdefgh", "sk-proj-abcdefghijklmnopqrstu", "AIzaSyA", "zzz"):
        assert leaked not in out


def test_secret_named_fields_are_masked_in_mappings() -> None:
    """Fields named like credentials are masked whatever their value looks like."""
    out = redact({"api_key": "short1", "headers": {"Authorization": "x"}, "model": "m"})
    assert out == {
        "api_key": "[REDACTED]",
        "headers": {"Authorization": "[REDACTED]"},
        "model": "m",
    }
