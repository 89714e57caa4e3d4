"""Real photos for the face and mask tests, read from pinned packages.

Why: the tests must run on photos a user could send, and no photo may be committed here; the
packages below carry them. A group photo of six people ships in insightface's source
distribution (its wheels carry none), a portrait (NASA's public-domain astronaut photo) in
scikit-image's wheel. Each file is trusted only after its sha256 matches the pin.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile

from onnx_support import WHEELS_DIR
from PIL import Image

from plugins.onnx.export.spec import SourceFile
from plugins.onnx.export.wheels import WheelCache

GROUP_PHOTO = SourceFile(
    key="group",
    package="insightface",
    version="0.7.3",
    member="insightface-0.7.3/insightface/data/images/t1.jpg",
    sha256="47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
)
GROUP_FACES = 6  # six people, all facing the camera
PORTRAIT = SourceFile(
    key="portrait",
    package="scikit-image",
    version="0.25.2",
    member="skimage/data/astronaut.png",
    sha256="88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
)


def _checked(data: bytes, source: SourceFile) -> Image.Image:
    digest = hashlib.sha256(data).hexdigest()
    assert digest == source.sha256, f"{source.member}: sha256 {digest}, pinned {source.sha256}"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def group_photo() -> Image.Image:
    """The six-person group photo from insightface's sdist, decoded."""
    return _checked(group_photo_jpeg(), GROUP_PHOTO)


def group_photo_jpeg() -> bytes:
    """The six-person group photo's JPEG file (1280x886) from insightface's sdist (downloaded
    once, no build), as a user would send it."""
    sdist = WHEELS_DIR / f"insightface-{GROUP_PHOTO.version}.tar.gz"
    if not sdist.exists():
        WHEELS_DIR.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=insightface",
            "--quiet", "--dest", str(WHEELS_DIR), f"insightface=={GROUP_PHOTO.version}",
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=600)
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(GROUP_PHOTO.member)
        assert member is not None, f"{sdist.name} has no {GROUP_PHOTO.member}"
        return member.read()


def portrait() -> Image.Image:
    """The astronaut portrait from scikit-image's wheel."""
    path = WheelCache(WHEELS_DIR).extract(PORTRAIT, WHEELS_DIR / "members")
    return _checked(path.read_bytes(), PORTRAIT)
