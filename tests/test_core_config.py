"""Specifications of typed gateway_settings loading."""

import msgspec
import pytest

from core.config import ConfigError, load_section


class _Retry(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    attempts: int = 3


def test_missing_section_yields_defaults() -> None:
    """A config without the section gives the schema's defaults."""
    assert load_section({"model_list": []}, "retry", _Retry) == _Retry()


def test_unknown_field_is_rejected_with_its_path() -> None:
    """A typo in a section is an error naming the section and the field."""
    with pytest.raises(ConfigError, match=r"gateway_settings\.retry.*atempts"):
        load_section({"gateway_settings": {"retry": {"atempts": 2}}}, "retry", _Retry)
