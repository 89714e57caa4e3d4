"""Input references: how an event names an image, a video or an archive it does not carry.

Why by reference: Kafka refuses records over about 1 MB by default, so inputs travel as an
artifact id (the store of `gateway_settings.artifacts`), an absolute path under an allowed
root, or an http(s) URL fetched through the guarded fetcher (no private addresses, size and
type limits). `MediaResolver` turns any of the three into bytes and a content type, refusing
with `InputRefused` / `InputNotFound` (or the caller's subclasses of them) naming the cause.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import msgspec

from artifacts import (
    ArtifactNotFound,
    ArtifactStore,
    FetchFailed,
    FetchRefused,
    FetchRejected,
    GuardedFetcher,
    InvalidArtifactId,
)
from core.redact import Redactor
from pipelines._errors import InputNotFound, InputRefused, InputUnavailable

__all__ = ["Media", "MediaRef", "MediaResolver", "resolve_path"]


class MediaRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where an input is: exactly one of a file path, an artifact id or an http(s) URL."""

    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    artifact_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://", max_length=4096)] | None = None

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.path, self.artifact_id, self.url)) != 1:
            raise ValueError("a reference needs exactly one of path, artifact_id, url")


class Media(msgspec.Struct, frozen=True):
    """An input's bytes and its content type (as stored, served, or guessed for a file)."""

    data: bytes
    content_type: str


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def resolve_path(
    raw: str,
    roots: Sequence[Path],
    *,
    refused: type[InputRefused] = InputRefused,
    not_found: type[InputNotFound] = InputNotFound,
) -> Path:
    """The real file `raw` names, refused unless it and its resolved target (symlinks
    followed) lie under one of `roots` (themselves resolved)."""
    if not raw.startswith("/"):
        raise refused("paths must be absolute")
    # Lexical check first: a path outside the roots is refused without touching the disk,
    # so the refusal says nothing about what exists there.
    if not _under(Path(os.path.normpath(raw)), roots):
        raise refused("the path is outside the allowed roots")
    try:
        real = Path(raw).resolve(strict=True)
    except FileNotFoundError as exc:
        raise not_found("no file at the given path") from exc
    except (OSError, RuntimeError) as exc:  # a symlink loop, a permission error
        raise refused(f"the path cannot be resolved: {type(exc).__name__}") from exc
    if not _under(real, roots):
        raise refused("the path leads outside the allowed roots")
    if not real.is_file():
        raise refused("the path is not a regular file")
    return real


def _accepted(content_type: str, accept: Sequence[str]) -> bool:
    """Whether `content_type` matches one of `accept` ("image/png", "image/*", "*/*")."""
    base = content_type.split(";", 1)[0].strip().lower()
    major = base.split("/", 1)[0]
    return any(a in ("*/*", base) or a == f"{major}/*" for a in accept)


_SUFFIX_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".zip": "application/zip",
}


class MediaResolver:
    """Resolves references for one handler: its allowed roots, store and fetch rules."""

    def __init__(
        self,
        *,
        allowed_roots: Sequence[str | Path] = (),
        store: ArtifactStore | None = None,
        fetcher: GuardedFetcher | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self._roots = [Path(r).resolve() for r in allowed_roots]
        self._store = store
        self._fetcher = fetcher
        self._redactor = redactor if redactor is not None else Redactor()

    async def resolve(
        self,
        ref: MediaRef,
        *,
        accept: Sequence[str],
        noun: str = "input",
        refused: type[InputRefused] = InputRefused,
        not_found: type[InputNotFound] = InputNotFound,
    ) -> Media:
        """The bytes `ref` names, their type one of `accept`; `noun` names the input in
        errors ("the garment image ...")."""
        if ref.path is not None:
            path = resolve_path(ref.path, self._roots, refused=refused, not_found=not_found)
            guessed = _SUFFIX_TYPES.get(path.suffix.lower(), "application/octet-stream")
            media = Media(await asyncio.to_thread(path.read_bytes), guessed)
        elif ref.artifact_id is not None:
            if self._store is None:
                raise refused(f"the {noun} is an artifact, but no artifact store is configured")
            try:
                data = await self._store.get(ref.artifact_id)
                stored = await self._store.ref(ref.artifact_id)
            except InvalidArtifactId as exc:
                raise refused(f"the {noun}'s artifact id is malformed") from exc
            except ArtifactNotFound as exc:
                raise not_found(f"no artifact {ref.artifact_id} for the {noun}") from exc
            media = Media(bytes(data), stored.content_type)
        else:
            assert ref.url is not None  # MediaRef holds exactly one reference
            if self._fetcher is None:
                self._fetcher = GuardedFetcher()
            try:
                data, content_type = await self._fetcher.fetch(ref.url, accept=list(accept))
            # The fetcher's reasons may quote the URL, and a URL may carry a token.
            except (FetchRefused, FetchRejected) as exc:
                raise refused(self._redactor.scrub(f"the {noun} URL was refused: {exc}")) from exc
            except FetchFailed as exc:
                raise InputUnavailable(
                    self._redactor.scrub(f"the {noun} URL could not be fetched: {exc}")
                ) from exc
            media = Media(bytes(data), content_type)
        if not media.data:
            raise refused(f"the {noun} is empty")
        if not _accepted(media.content_type, accept):
            raise refused(f"the {noun} is {media.content_type}, expected one of {list(accept)}")
        return media
