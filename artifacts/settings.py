"""`gateway_settings.artifacts`: which store holds the artifacts, how long they live, and how
links to them are signed.

Why one section: the consumers put what the providers return, the proxy serves it back over
signed links and the sweeper collects it, so all three must open the same store with the same
retention and signing key. Secrets (the S3 keys, the signing key) are `os.environ/NAME`
references, resolved here and never printed.

    gateway_settings:
      artifacts:
        backend: local                 # or s3
        root: .gateway/artifacts       # local: the directory (relative to the config file)
        retention_s: 604800            # garbage-collected a week after the last put
        link_ttl_s: 3600               # signed links expire after an hour
        signing_key: os.environ/GATEWAY_ARTIFACT_SIGNING_KEY
        public_url: http://127.0.0.1:4000    # where the proxy serving the links listens
        s3:
          endpoint_url: os.environ/S3_ENDPOINT_URL
          bucket: fashion-artifacts
          region: us-east-1
          access_key_id: os.environ/AWS_ACCESS_KEY_ID
          secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY
          prefix: artifacts/
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from artifacts.store import ArtifactStore, LocalArtifactStore
from core.config import ConfigError, load_section, read_config_file

__all__ = [
    "ArtifactSettings",
    "S3Settings",
    "load_artifact_settings",
    "open_store",
    "resolve_secret",
]

_ENV_PREFIX = "os.environ/"
# A week: long enough for a downstream job to pick a result up after a weekend.
DEFAULT_RETENTION_S = 7 * 24 * 3600.0


class S3Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An S3-compatible bucket (AWS S3 or any server speaking its API)."""

    bucket: Annotated[str, msgspec.Meta(min_length=3, max_length=63)]
    # None: AWS itself (the SDK's endpoint for `region`).
    endpoint_url: str | None = None
    region: str = "us-east-1"
    # None: the SDK's own credential chain (environment, profile, instance role).
    access_key_id: str | None = None
    secret_access_key: str | None = None
    # Keys are `<prefix><id>`; a shared bucket keeps the gateway's objects under one prefix.
    prefix: str = "artifacts/"
    # Path-style addressing (`endpoint/bucket/key`): what self-hosted servers expect.
    path_style: bool = True


class ArtifactSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    backend: Literal["local", "s3"] = "local"
    # The local store's directory; relative paths are relative to the config file.
    root: str = ".gateway/artifacts"
    retention_s: Annotated[float, msgspec.Meta(gt=0)] = DEFAULT_RETENTION_S
    # How often the sweeper collects artifacts past retention.
    gc_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    link_ttl_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    # HMAC key of the signed links (at least 16 bytes); None: no links are issued or served.
    signing_key: str | None = None
    # Base URL the links start with (the proxy's address as clients reach it).
    public_url: str | None = None
    s3: S3Settings | None = None

    def __post_init__(self) -> None:
        if self.backend == "s3" and self.s3 is None:
            raise ValueError("backend s3 needs an `s3:` section (bucket, endpoint_url, keys)")


def resolve_secret(value: str | None, environ: Mapping[str, str]) -> str | None:
    """`value`, or the environment variable an `os.environ/NAME` reference names (None when
    unset: the caller decides whether that is an error)."""
    if value is None or not value.startswith(_ENV_PREFIX):
        return value
    return environ.get(value.removeprefix(_ENV_PREFIX)) or None


def load_artifact_settings(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> ArtifactSettings:
    """`gateway_settings.artifacts` of the config at `path`, secrets resolved, the local root
    made absolute against the config's directory (ConfigError naming what is wrong)."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = read_config_file(path)
    settings = load_section(data, "artifacts", ArtifactSettings)
    root = Path(settings.root)
    if not root.is_absolute():
        root = Path(path).resolve().parent / root
    s3 = settings.s3
    if s3 is not None:
        s3 = msgspec.structs.replace(
            s3,
            endpoint_url=resolve_secret(s3.endpoint_url, env),
            access_key_id=resolve_secret(s3.access_key_id, env),
            secret_access_key=resolve_secret(s3.secret_access_key, env),
        )
    key = resolve_secret(settings.signing_key, env)
    if key is not None and len(key.encode()) < 16:
        raise ConfigError("gateway_settings.artifacts.signing_key must be at least 16 bytes")
    return msgspec.structs.replace(
        settings,
        root=str(root),
        s3=s3,
        signing_key=key,
        public_url=resolve_secret(settings.public_url, env),
    )


def open_store(settings: ArtifactSettings) -> ArtifactStore:
    """The store the settings describe (not yet connected: stores connect on first use)."""
    if settings.backend == "s3":
        # Imported here: the S3 client is only loaded by processes configured for it.
        from artifacts.s3 import S3ArtifactStore  # noqa: PLC0415

        assert settings.s3 is not None  # checked by ArtifactSettings.__post_init__
        return S3ArtifactStore(settings.s3)
    return LocalArtifactStore(Path(settings.root))
