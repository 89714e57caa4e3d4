"""A valid product caption answer, shared by the structured tests that decode one and the ones
whose fake proxy answers with one."""

from __future__ import annotations

from typing import Any

__all__ = ["CAPTION"]

# Every field ProductCaption requires, each value from its vocabularies.
CAPTION: dict[str, Any] = {
    "title": "Red silk midi dress",
    "category": "dresses",
    "colors": ["red"],
    "materials": ["silk"],
    "pattern": "solid",
    "fit": "regular",
    "style_tags": ["evening"],
    "description": "A red silk midi dress with a wrap front.",
}
