"""Signed links to artifacts: the URL a result hands an HTTP client, and the route serving it.

Why here: the consumers issue links (in results) and the proxy serves them, so both must agree
on the route and the signature; `sign` / `verify` make a link good for one artifact until one
moment, and the route needs no API key.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec

from artifacts.settings import ArtifactSettings
from artifacts.signing import sign
from artifacts.store import ArtifactRef

__all__ = ["LINK_PATH", "OutputArtifact", "link_for", "output_of"]

# The proxy serves GET {public_url}{LINK_PATH}{id}?expires=...&signature=...
LINK_PATH = "/gateway/v1/artifacts/"


class OutputArtifact(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An artifact a result points at: its id and type, and a signed link when links are on."""

    artifact_id: str
    content_type: str
    size: int
    url: str | None = None
    url_expires_at: datetime | None = None


def link_for(
    settings: ArtifactSettings, artifact_id: str, *, now: float | None = None
) -> tuple[str, datetime] | None:
    """A signed URL for `artifact_id` and its expiry, or None when links are not configured
    (no signing key or no public URL)."""
    if settings.signing_key is None or settings.public_url is None:
        return None
    expires = int((time.time() if now is None else now) + settings.link_ttl_s)
    query = sign(artifact_id, expires, settings.signing_key.encode())
    url = f"{settings.public_url.rstrip('/')}{LINK_PATH}{artifact_id}{query}"
    return url, datetime.fromtimestamp(expires, UTC)


def output_of(
    settings: ArtifactSettings, ref: ArtifactRef, *, now: float | None = None
) -> OutputArtifact:
    """What a result carries for a stored artifact."""
    link = link_for(settings, ref.id, now=now)
    return OutputArtifact(
        artifact_id=ref.id,
        content_type=ref.content_type,
        size=ref.size,
        url=None if link is None else link[0],
        url_expires_at=None if link is None else link[1],
    )
