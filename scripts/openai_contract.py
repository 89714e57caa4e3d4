"""Regenerate proxy/contract/openai_requests.json from OpenAI's full OpenAPI document.

Why it exists: the gateway validates requests against OpenAI's own request schemas, and the
full document (3 MB, 1,400 components) is far more than the routes it serves need. This script
keeps the request components of those routes and everything they reference, without prose
(descriptions, examples, titles), so the vendored file stays small and a diff after an update
shows only contract changes. The document is MIT licensed; its notice is kept beside the file
(proxy/contract/LICENSE.openai-openapi).

    python scripts/openai_contract.py PATH/TO/openapi.json [SOURCE-REVISION]

PATH is the `openapi.json` (or `openapi.yaml`) of the openai/openai-openapi repository;
SOURCE-REVISION (a commit) is recorded in the output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The request bodies of the routes the gateway serves itself: one list, the validator's.
from proxy.contract.schema import ROOTS  # noqa: E402 - after the path set-up above

TARGET = ROOT / "proxy" / "contract" / "openai_requests.json"

# Prose and vendor annotations: nothing a validator reads.
_DROPPED = frozenset({"description", "example", "examples", "title", "x-oaiMeta"})
# Keywords whose value maps names (a property may well be called `description`) to schemas.
_NAMED = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_PREFIX = "#/components/schemas/"


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml  # noqa: PLC0415 - only for the YAML form of the document

        loaded: dict[str, Any] = yaml.safe_load(text)
        return loaded
    document: dict[str, Any] = json.loads(text)
    return document


def _trim(node: Any, *, names: bool = False) -> Any:
    """`node` without prose; `names`: node maps property names (kept whatever they are) to
    schemas, as `properties` does."""
    if isinstance(node, dict):
        if names:
            return {key: _trim(value) for key, value in node.items()}
        return {
            key: _trim(value, names=key in _NAMED)
            for key, value in node.items()
            if key not in _DROPPED and not key.startswith("x-")
        }
    if isinstance(node, list):
        return [_trim(item) for item in node]
    return node


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_PREFIX):
                found.add(value[len(_PREFIX) :])
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)


def closure(schemas: dict[str, Any], roots: tuple[str, ...]) -> list[str]:
    """The roots and every component they reference, directly or not, sorted."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(schemas[name], found)
        todo.extend(found - seen)
    return sorted(seen)


def trimmed(document: dict[str, Any], revision: str | None) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    return {
        "source": {
            "repository": "openai/openai-openapi",
            "revision": revision,
            "openapi": document.get("openapi"),
            "version": document.get("info", {}).get("version"),
            "license": "MIT (see LICENSE.openai-openapi)",
        },
        "roots": list(ROOTS),
        "components": {"schemas": {name: _trim(schemas[name]) for name in closure(schemas, ROOTS)}},
    }


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    revision = argv[2] if len(argv) == 3 else None
    out = trimmed(_load(Path(argv[1])), revision)
    TARGET.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    count = len(out["components"]["schemas"])
    print(f"wrote {TARGET.relative_to(ROOT)}: {count} components")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
