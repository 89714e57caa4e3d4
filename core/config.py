"""Typed loading of the gateway's own sections of litellm_config.yaml.

Operators edit one file. LiteLLM reads the keys it knows (model_list, router_settings,
litellm_settings, general_settings) and ignores the rest, so the gateway's settings live under a
top-level `gateway_settings:` mapping, one subsection per package. Each package declares its
subsection as a msgspec Struct with `forbid_unknown_fields=True`: a typo in config is an error
at start-up that names the field, never a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

T = TypeVar("T")

GATEWAY_SECTION = "gateway_settings"


class ConfigError(Exception):
    """The configuration file is missing, unreadable or does not match its schema."""

    retriable = False


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse the YAML file at `path` into a mapping (an empty file is an empty mapping)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return data


def load_section(data: dict[str, Any], name: str, schema: type[T]) -> T:
    """Convert `gateway_settings.<name>` of an already-parsed config into `schema`.

    A missing section yields the schema's defaults, so a minimal config stays minimal.
    """
    section = (data.get(GATEWAY_SECTION) or {}).get(name) or {}
    try:
        return msgspec.convert(section, schema, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{GATEWAY_SECTION}.{name}: {exc}") from exc
