"""Safety settings as Vertex AI validates them, and the block markers that drive refusals.

Why it exists: the gateway must turn every kind of Vertex refusal into a content-policy error
and must send the configured safety settings, so tests need an upstream that refuses on demand,
one marker per block reason, and whose refusals depend on the thresholds the request carried.

Marker syntax (anywhere in the request's text: any part of any turn, the system instruction,
or the try-on ``prompt``; or forced for the next requests through the control API)::

    [[block:REASON]]                     promptFeedback.blockReason = REASON, no candidates
        REASON: SAFETY OTHER BLOCKLIST PROHIBITED_CONTENT IMAGE_SAFETY JAILBREAK MODEL_ARMOR
    [[finish:REASON]]                    one candidate, no content, finishReason = REASON
        REASON: SAFETY RECITATION PROHIBITED_CONTENT BLOCKLIST SPII OTHER IMAGE_SAFETY
                IMAGE_PROHIBITED_CONTENT IMAGE_RECITATION IMAGE_OTHER NO_IMAGE
    [[block:SAFETY:CATEGORY]]            the harm category rated (default SEXUALLY_EXPLICIT;
    [[block:SAFETY:CATEGORY:LEVEL]]      the HARM_CATEGORY_ prefix may be left out), and how
                                         strongly: LOW, MEDIUM or HIGH (default HIGH)
    [[rai:TEXT]]                         virtual try-on: every prediction is replaced by
                                         ``{"raiFilteredReason": TEXT}``

Thresholds matter for the safety-rated reasons only, as on Vertex (prohibited content,
blocklists, recitation and Model Armor are not adjustable): SAFETY, IMAGE_SAFETY and JAILBREAK
markers block only when the request's threshold for the rated category blocks that level.
BLOCK_NONE and OFF never block; BLOCK_ONLY_HIGH blocks HIGH; BLOCK_MEDIUM_AND_ABOVE (also what
an absent setting means here, so a bare marker blocks) blocks MEDIUM and HIGH;
BLOCK_LOW_AND_ABOVE blocks all three. IMAGE_SAFETY rates HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT
by default and falls back to the text category's setting when the image one was not sent;
JAILBREAK rates HARM_CATEGORY_JAILBREAK. A ``[[rai:...]]`` marker is ignored by a try-on request
whose ``safetySetting`` is ``block_none``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from emulators.gemini.wire import SAFETY_THRESHOLDS
from emulators.http.errors import BadRequestBody

__all__ = [
    "FINISH_REASONS",
    "HARM_CATEGORIES",
    "HARM_METHODS",
    "HARM_THRESHOLDS",
    "PROMPT_REASONS",
    "Block",
    "blocks",
    "find_block",
]

PROMPT_REASONS = frozenset(
    {"SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY", "JAILBREAK"}
    | {"MODEL_ARMOR"}
)
FINISH_REASONS = frozenset(
    {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "OTHER", "IMAGE_SAFETY"}
    | {"IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "NO_IMAGE"}
)
# Vertex adds the image categories and jailbreak to the Gemini API's list.
HARM_CATEGORIES = frozenset(
    {
        "HARM_CATEGORY_UNSPECIFIED",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_CIVIC_INTEGRITY",
        "HARM_CATEGORY_JAILBREAK",
        "HARM_CATEGORY_IMAGE_HATE",
        "HARM_CATEGORY_IMAGE_DANGEROUS_CONTENT",
        "HARM_CATEGORY_IMAGE_HARASSMENT",
        "HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT",
    }
)
HARM_THRESHOLDS = SAFETY_THRESHOLDS
HARM_METHODS = frozenset({"HARM_BLOCK_METHOD_UNSPECIFIED", "SEVERITY", "PROBABILITY"})

_MARKER = re.compile(r"\[\[(block|finish|rai):([^\]]*)\]\]")
_LEVELS = {"LOW": 1, "MEDIUM": 2, "HIGH": 3}
# The lowest level each threshold blocks; None: never blocks.
_BLOCKS_FROM: Mapping[str, int | None] = {
    "BLOCK_LOW_AND_ABOVE": 1,
    "BLOCK_MEDIUM_AND_ABOVE": 2,
    "BLOCK_ONLY_HIGH": 3,
    "BLOCK_NONE": None,
    "OFF": None,
}
_DEFAULT_THRESHOLD = "BLOCK_MEDIUM_AND_ABOVE"
_RATED = {
    "SAFETY": "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "IMAGE_SAFETY": "HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT",
    "JAILBREAK": "HARM_CATEGORY_JAILBREAK",
}


@dataclass(frozen=True, slots=True)
class Block:
    """One marker: where the refusal shows and, for rated reasons, what was rated how."""

    kind: Literal["prompt", "finish", "rai"]
    reason: str
    category: str | None = None
    level: str = "HIGH"


def _category(name: str) -> str:
    full = name if name.startswith("HARM_CATEGORY_") else f"HARM_CATEGORY_{name}"
    if full not in HARM_CATEGORIES:
        raise BadRequestBody(f"block marker: unknown harm category {name!r}")
    return full


def find_block(text: str) -> Block | None:
    """The first block marker in ``text``; a malformed one is a BadRequestBody (-> 400)."""
    match = _MARKER.search(text)
    if match is None:
        return None
    kind, spec = match.group(1), match.group(2).strip()
    if kind == "rai":
        return Block(kind="rai", reason=spec or "Filtered by the emulator's [[rai]] marker.")
    reason, *rest = [piece.strip().upper() for piece in spec.split(":")]
    allowed = PROMPT_REASONS if kind == "block" else FINISH_REASONS
    if reason not in allowed:
        raise BadRequestBody(f"[[{kind}:...]] marker: reason must be one of {sorted(allowed)}")
    category = _category(rest[0]) if rest else _RATED.get(reason)
    level = rest[1] if len(rest) > 1 else "HIGH"
    if level not in _LEVELS:
        raise BadRequestBody(f"[[{kind}:...]] marker: level must be LOW, MEDIUM or HIGH")
    return Block(
        kind="prompt" if kind == "block" else "finish",
        reason=reason,
        category=category,
        level=level,
    )


def blocks(block: Block, thresholds: Mapping[str, str]) -> bool:
    """Whether ``block`` refuses a request whose safetySettings map category -> threshold."""
    if block.reason not in _RATED or block.category is None:
        return True
    threshold = thresholds.get(block.category)
    if threshold is None and block.category.startswith("HARM_CATEGORY_IMAGE_"):
        threshold = thresholds.get(block.category.replace("IMAGE_", "", 1))
    if threshold in (None, "HARM_BLOCK_THRESHOLD_UNSPECIFIED"):
        threshold = _DEFAULT_THRESHOLD
    lowest = _BLOCKS_FROM.get(threshold or _DEFAULT_THRESHOLD)
    return lowest is not None and _LEVELS[block.level] >= lowest
