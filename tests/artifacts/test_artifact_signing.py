"""Signed, expiring artifact links: genuine ones pass until their time, anything edited fails."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from artifacts import SignatureExpired, SignatureInvalid, sign, verify

KEY = b"k" * 32
ARTIFACT = "ab" * 32
EXPIRES_AT = 1_800_000_000


def _parts(query: str) -> tuple[str, str]:
    assert query.startswith("?")
    fields = parse_qs(query[1:], strict_parsing=True)
    return fields["expires"][0], fields["signature"][0]


def test_a_link_verifies_before_its_expiry() -> None:
    """The query string sign makes is accepted for that artifact before it expires."""
    expires, signature = _parts(sign(ARTIFACT, EXPIRES_AT, KEY))
    assert expires == str(EXPIRES_AT)
    verify(ARTIFACT, expires, signature, KEY, now=EXPIRES_AT - 1)


def test_a_link_is_refused_once_expired() -> None:
    """At or after its expiry a genuine link raises SignatureExpired."""
    expires, signature = _parts(sign(ARTIFACT, EXPIRES_AT, KEY))
    with pytest.raises(SignatureExpired):
        verify(ARTIFACT, expires, signature, KEY, now=EXPIRES_AT)


def test_a_later_expiry_with_the_old_signature_is_invalid() -> None:
    """Editing `expires` to stretch a link makes it invalid, not merely expired."""
    _, signature = _parts(sign(ARTIFACT, EXPIRES_AT, KEY))
    with pytest.raises(SignatureInvalid):
        verify(ARTIFACT, str(EXPIRES_AT + 3600), signature, KEY, now=EXPIRES_AT + 10)


def test_a_link_for_one_artifact_does_not_grant_another() -> None:
    """The signature covers the artifact id."""
    expires, signature = _parts(sign(ARTIFACT, EXPIRES_AT, KEY))
    with pytest.raises(SignatureInvalid):
        verify("cd" * 32, expires, signature, KEY, now=EXPIRES_AT - 1)


def test_a_link_signed_with_another_key_is_invalid() -> None:
    """Only the key that signed it verifies it."""
    expires, signature = _parts(sign(ARTIFACT, EXPIRES_AT, b"o" * 32))
    with pytest.raises(SignatureInvalid):
        verify(ARTIFACT, expires, signature, KEY, now=EXPIRES_AT - 1)


@pytest.mark.parametrize(
    ("expires", "signature"),
    [
        ("soon", "0" * 64),
        (str(EXPIRES_AT), "not-hex"),
        (str(EXPIRES_AT), "0" * 63),
        ("-1", "0" * 64),
    ],
)
def test_malformed_parameters_are_invalid(expires: str, signature: str) -> None:
    """Garbage in either parameter is SignatureInvalid, not a ValueError."""
    with pytest.raises(SignatureInvalid):
        verify(ARTIFACT, expires, signature, KEY, now=0)


def test_a_flipped_signature_digit_is_invalid() -> None:
    """Changing one hex digit of the signature fails verification."""
    expires, signature = _parts(sign(ARTIFACT, EXPIRES_AT, KEY))
    flipped = ("1" if signature[0] == "0" else "0") + signature[1:]
    with pytest.raises(SignatureInvalid):
        verify(ARTIFACT, expires, flipped, KEY, now=EXPIRES_AT - 1)


def test_short_keys_are_refused() -> None:
    """A key too short to resist guessing is a configuration error."""
    with pytest.raises(ValueError, match="at least"):
        sign(ARTIFACT, EXPIRES_AT, b"short")
