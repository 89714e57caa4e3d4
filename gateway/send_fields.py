"""Building a request of any kind from the command line, checked before anything is sent.

Why its own module: `gateway send <kind>` must fill Structs it has never seen (a handler
package declares them), so everything here works from msgspec's description of the kind's
request Struct: which fields exist and are required (`--list`), how a `--set` value is read
(as text for text fields, as JSON otherwise), which fields take files (`--input`: a media
reference is uploaded to the artifact store and becomes `{artifact_id: ...}`; an image URL
field becomes a data: URL), and the strict conversion that names the first bad field.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from msgspec import inspect as mi

from schemas import Request

__all__ = [
    "EventFieldError",
    "FieldInfo",
    "Upload",
    "build_event",
    "example_fields",
    "fields_of",
    "parse_sets",
]

# Set by `gateway send` itself, or defaults every request carries: not listed as inputs.
_ENVELOPE = frozenset({"event_id", "occurred_at", "schema_version", "subject", "task"})

R = TypeVar("R", bound=Request)

Upload = Callable[[bytes, str], Awaitable[str]]
"""Stores a file's bytes with their content type; returns the artifact id."""


class EventFieldError(ValueError):
    """A field given on the command line that the kind's request does not accept."""


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One request field as `--list` shows it."""

    name: str
    required: bool
    type: str
    # "artifact": a media reference (`--input` uploads the file); "data-url": an image URL
    # (`--input` inlines it); None: not a file field.
    file: str | None
    many: bool


def _unwrap(t: mi.Type) -> mi.Type:
    """The type without its `| None`."""
    if isinstance(t, mi.UnionType):
        rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(rest) == 1:
            return rest[0]
    return t


def _is_reference(t: mi.Type) -> bool:
    return isinstance(t, mi.StructType) and {"artifact_id", "path", "url"} <= {
        f.name for f in t.fields
    }


def _file_kind(t: mi.Type) -> str | None:
    if _is_reference(t):
        return "artifact"
    if isinstance(t, mi.StrType) and t.pattern is not None and "data:" in t.pattern:
        return "data-url"
    return None


def _describe(t: mi.Type) -> str:
    t = _unwrap(t)
    if isinstance(t, mi.ListType):
        return f"list[{_describe(t.item_type)}]"
    if isinstance(t, mi.LiteralType):
        return "|".join(map(str, t.values))
    if isinstance(t, mi.StructType):
        return "reference" if _is_reference(t) else t.cls.__name__
    names = {mi.StrType: "text", mi.IntType: "int", mi.FloatType: "number", mi.BoolType: "bool"}
    return names.get(type(t), type(t).__name__.removesuffix("Type").lower())


def _fields(request: type[Request]) -> dict[str, mi.Field]:
    info = mi.type_info(request)
    assert isinstance(info, mi.StructType)
    return {f.encode_name: f for f in info.fields}


def fields_of(request: type[Request]) -> list[FieldInfo]:
    """The fields a sender fills in (the envelope's are set by `gateway send`)."""
    found = []
    for name, field in _fields(request).items():
        if name in _ENVELOPE:
            continue
        t = _unwrap(field.type)
        many = isinstance(t, mi.ListType)
        item = _unwrap(t.item_type) if isinstance(t, mi.ListType) else t
        found.append(
            FieldInfo(
                name=name,
                required=field.required,
                type=_describe(field.type),
                file=_file_kind(item),
                many=many,
            )
        )
    return found


def _text_field(field: mi.Field | None) -> bool:
    t = None if field is None else _unwrap(field.type)
    return isinstance(t, mi.StrType) or (
        isinstance(t, mi.LiteralType) and all(isinstance(v, str) for v in t.values)
    )


def parse_sets(request: type[Request], pairs: Sequence[str]) -> dict[str, Any]:
    """`--set key=value` pairs as fields: text fields take the text as given, others JSON
    (`outfits=3`, `criteria=["no logo"]`), falling back to the text; `a.b=v` nests."""
    fields = _fields(request)
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise EventFieldError(f"--set {pair!r} must look like KEY=VALUE")
        path = key.split(".")
        value: Any = raw
        if len(path) > 1 or not _text_field(fields.get(key)):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        target = found
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise EventFieldError(f"--set {key}: {part} is not an object")
        target[path[-1]] = value
    return found


def _content_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


_Files = dict[str, tuple[FieldInfo, list[tuple[bytes, str]]]]


def _read_inputs(request: type[Request], pairs: Sequence[str]) -> _Files:
    """Each `--input FIELD=FILE` checked against the field and read: field -> bytes, types."""
    infos = {f.name: f for f in fields_of(request)}
    given: _Files = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name or not raw:
            raise EventFieldError(f"--input {pair!r} must look like FIELD=FILE")
        info = infos.get(name)
        if info is None or info.file is None:
            takes = sorted(f.name for f in infos.values() if f.file) or ["none"]
            raise EventFieldError(
                f"--input {name}: not a file field of {_tag(request)} (file fields: "
                f"{', '.join(takes)})"
            )
        path = Path(raw)
        if not path.is_file():
            raise EventFieldError(f"--input {name}: no file at {raw}")
        files = given.setdefault(name, (info, []))[1]
        if files and not info.many:
            raise EventFieldError(f"--input {name}: the field takes one file, more were given")
        files.append((path.read_bytes(), _content_type(path)))
    return given


async def _inputs(
    request: type[Request], pairs: Sequence[str], upload: Upload | None
) -> dict[str, Any]:
    """The `--input` fields' values: references to uploaded artifacts, or data: URLs."""
    given = await asyncio.to_thread(_read_inputs, request, pairs)
    found: dict[str, Any] = {}
    for name, (info, files) in given.items():
        values: list[Any] = []
        for data, ctype in files:
            if info.file == "artifact":
                if upload is None:
                    raise EventFieldError(f"--input {name}: no artifact store is configured")
                values.append({"artifact_id": await upload(data, ctype)})
            else:
                values.append(f"data:{ctype};base64,{base64.b64encode(data).decode()}")
        found[name] = values if info.many else values[0]
    return found


def _tag(request: type[Request]) -> str:
    return str(request.__struct_config__.tag)


_AT = re.compile(r"^(?P<message>.*) - at `\$(?P<where>[^`]*)`$", re.DOTALL)


def _validation_message(request: type[Request], exc: msgspec.ValidationError) -> str:
    text = str(exc)
    match = _AT.match(text)
    if match is None:
        return f"{_tag(request)}: {text}"
    where = match.group("where").lstrip(".") or "(the event)"
    return f"{_tag(request)}: field `{where}`: {match.group('message')}"


async def build_event(
    request: type[R],
    envelope: Mapping[str, Any],
    *,
    documents: Sequence[Mapping[str, Any]] = (),
    sets: Sequence[str] = (),
    inputs: Sequence[str] = (),
    upload: Upload | None = None,
) -> R:
    """The request: `documents` (`--file`, `--json`) then `--set` then `--input` over the
    `envelope` (event id, subject, task). Raises EventFieldError naming the first field
    that is unknown or does not validate; files are uploaded only once the rest is known."""
    fields = _fields(request)
    merged: dict[str, Any] = dict(envelope)
    for document in documents:
        merged.update(document)
    merged.update(parse_sets(request, sets))
    merged.pop("type", None)
    unknown = sorted(set(merged) - set(fields))
    if unknown:
        names = ", ".join(f.name for f in fields_of(request))
        raise EventFieldError(
            f"{_tag(request)}: unknown field `{unknown[0]}` (its fields: {names})"
        )
    merged.update(await _inputs(request, inputs, upload))
    try:
        return msgspec.convert(merged, request, strict=False)
    except msgspec.ValidationError as exc:
        raise EventFieldError(_validation_message(request, exc)) from exc


def _example_text(t: mi.StrType) -> str:
    pattern = t.pattern or ""
    if "data:" in pattern:
        return "data:image/png;base64,iVBORw0KGgo="
    if "https" in pattern:
        return "https://example.com/input"
    return "x" * max(1, t.min_length or 0)


def _example_number(t: mi.IntType | mi.FloatType) -> float:
    low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else 1)
    return low if t.le is None or low <= t.le else t.le


def _example(t: mi.Type) -> Any:
    t = _unwrap(t)
    simple: dict[type[mi.Type], Any] = {
        mi.StrType: _example_text,
        mi.IntType: _example_number,
        mi.FloatType: _example_number,
        mi.BoolType: lambda _: False,
        mi.LiteralType: lambda lit: lit.values[0],
        mi.DictType: lambda _: {},
        mi.UnionType: lambda union: _example(union.types[0]),
        mi.ListType: lambda seq: [_example(seq.item_type)] * max(1, seq.min_length or 0),
    }
    if type(t) in simple:
        return simple[type(t)](t)
    if isinstance(t, mi.StructType):
        if _is_reference(t):
            return {"artifact_id": "0" * 64}
        return {f.encode_name: _example(f.type) for f in t.fields if f.required}
    raise EventFieldError(f"no example for a field of type {type(t).__name__}")


def example_fields(request: type[Request]) -> dict[str, Any]:
    """The required fields of `request` filled with the smallest values that validate
    (what `gateway send <kind> --example` prints, as a starting point for `--file`)."""
    return {
        name: _example(field.type)
        for name, field in _fields(request).items()
        if field.required and name not in _ENVELOPE
    }
