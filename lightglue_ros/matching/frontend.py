"""Streaming front end: features once per frame, matched against a reference frame, persistent track ids.

``FrontEnd.track(image)`` extracts the new frame's features exactly once, matches them against the reference
frame and returns a `TrackResult`. The reference is the previous frame (``auto_promote=True``, the default) or a
keyframe chosen by the caller, who calls ``promote()`` to make the last tracked frame the next reference.

Backends share one interface and one result type, so accuracy and speed compare with one flag:
``lightglue`` (ALIKED + LightGlue, ours), ``xfeat`` (XFeat + LighterGlue, ours, built for CPUs), ``orb`` and
``sift`` (OpenCV, mutual nearest neighbours + ratio test) and ``hf`` (transformers' keypoint matchers).

Masks: pixels to ignore come from a per-call mask, a static mask image (the robot's body) and, when enabled,
a specular threshold (pixels at or above it). Keypoints on ignored pixels are kept out of attention and are never
matched (LightGlue's keypoint masks; for ORB/SIFT they are dropped before matching).

Track ids: a point matched through consecutive frames keeps its id. Ids are handed out when a frame becomes
the reference: its matched points inherit the reference's ids, the others get fresh ones.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import torch

from lightglue_ros.core.config import param
from lightglue_ros.core.image import check_image, normalise_channels, to_grey, to_uint8
from lightglue_ros.core.types import Telemetry, TrackResult
from lightglue_ros.matching.backends import (Backend, FrameFeatures, FrontEndError, LightGlueBackend, OpenCVBackend,
                                             PRECISIONS, resolve_device, resolve_precision)

BACKENDS = ("lightglue", "xfeat", "orb", "sift", "hf")
DETECTORS = ("aliked", "dog")  # where the LightGlue backend puts its keypoints (ALIKED describes both)
LEARNED = ("lightglue", "xfeat", "hf")  # backends that run on the torch device (ORB and SIFT stay on the CPU)
# Backends whose matches refine_matches aligns. Not xfeat: on TUM fr3 pairs 3 frames apart the alignment lowered
# its pose AUC@5 from 0.822 to 0.789 (bench accuracy, README), and ORB/SIFT stay the classic baselines.
REFINED = ("lightglue",)
SPECULAR_RIM = np.ones((7, 7), np.uint8)  # specular masks grow by 3 px


@dataclass
class FrontEndConfig:
    """Front-end settings; each field's description, range and choices are its node parameter's (core.config)."""

    backend: str = param("lightglue", "Matcher: lightglue (ALIKED + LightGlue), xfeat (XFeat + LighterGlue: "
                         "real time on a CPU), orb, sift or hf (a transformers keypoint matcher, hf_model; needs "
                         "pip install .[hf]).", choices=BACKENDS)
    max_keypoints: int = param(1024, "Keypoints per frame (top-k; -1 = all above detection_threshold).",
                               lo=-1, hi=100000)
    detection_threshold: float = param(0.0, "ALIKED / XFeat score threshold (0 = top-k mode with ALIKED, XFeat's "
                                       "own 0.05; detector aliked only).",
                                       lo=0.0, hi=1.0)
    nms_radius: int = param(2, "ALIKED non-maximum suppression radius (px; detector aliked only).", lo=0, hi=32)
    aliked_model: str = param("aliked-n16", "ALIKED variant.",
                              choices=("aliked-t16", "aliked-n16", "aliked-n16rot", "aliked-n32"))
    detector: str = param("aliked", "lightglue backend's keypoints: aliked (ALIKED's score map) or dog (OpenCV "
                          "difference-of-Gaussians: more precise poses on easy real pairs, ~30 % slower on a CPU, "
                          "weaker on small frames); ALIKED describes both.", choices=DETECTORS)
    depth_confidence: float = param(0.95, "LightGlue adaptive depth (early exit) confidence; -1 disables.",
                                    lo=-1.0, hi=1.0)
    width_confidence: float = param(0.0, "LightGlue adaptive width (point pruning) confidence; -1 disables, 0 = "
                                    "the backend's measured choice (lightglue 0.99, xfeat 0.95).",
                                    lo=-1.0, hi=1.0)
    filter_threshold: float = param(0.1, "Minimum match score kept.", lo=0.0, hi=1.0)
    device: str = param("auto", "Torch device: auto, cpu or cuda.", choices=("auto", "cpu", "cuda"))
    precision: str = param("auto", "Inference precision: auto (fp16 on CUDA; bf16 for xfeat on a CPU with AMX; "
                           "else fp32), fp32, fp16 (CUDA only) or bf16 (xfeat on a CPU only).",
                           choices=PRECISIONS)
    num_threads: int = param(0, "Torch CPU threads (0 = torch default).", lo=0, hi=256)
    weights: str = param("", "LightGlue checkpoint path ('' = find the installed one).")
    aliked_weights: str = param("", "ALIKED checkpoint path ('' = find the installed one).")
    colour: bool = param(True, "Feed colour images to ALIKED (false: grey).")
    specular_threshold: int = param(0, "Ignore pixels at or above this brightness (0 = off).", lo=0, hi=255)
    static_mask: str = param("", "Mono image file, non-zero = ignore (robot body); the node's mask_file.")
    min_keypoints: int = param(8, "Fewer keypoints than this in a frame: no matching (the frame fails with a "
                               "reason).", lo=0, hi=100000)
    auto_promote: bool = param(True, "True: every frame becomes the next reference; False: the caller promotes "
                               "(the pipeline fixes it to false: the odometry chooses keyframes).", parameter=False)
    ratio_test: float = param(0.8, "ORB/SIFT: Lowe's ratio test threshold.", lo=0.0, hi=1.0)
    # ORB and SIFT stay the classic baselines: only the lightglue backend aligns its matches (matching/refine.py).
    refine_matches: bool = param(True, "lightglue backend: align each matched point to its reference patch "
                                 "(sub-pixel, translation only) before the pose; ~45 ms per 500 matches on a CPU.")
    # xfeat backend (features/xfeat.py + LighterGlue in matching/lightglue.py)
    xfeat_scale: float = param(1.0, "xfeat backend: network input scale (< 1 = infer on a smaller image, "
                               "keypoints mapped back to input pixels).", lo=0.25, hi=1.0)
    xfeat_weights: str = param("", "xfeat backend: xfeat.pt path or its folder ('' = find the installed one); "
                               "weights names LighterGlue's checkpoint.")
    # hf backend (transformers' keypoint matchers, matching/hf_backend.py; needs `pip install .[hf]`)
    hf_model: str = param("", "hf backend: hub id (ETH-CVG/lightglue_superpoint, zju-community/efficientloftr) or a "
                          "folder with a saved model and image processor.")
    hf_threshold: float = param(-1.0, "hf backend: match score threshold (-1 = the model's own).", lo=-1.0, hi=1.0)
    hf_track_radius: float = param(2.0, "hf backend, detector-free models: a new match within this of a reference "
                                   "point keeps its track id (px).", lo=0.0, hi=100.0)


def load_mask_image(path: str) -> Optional[np.ndarray]:
    """Read a mask file as HxW bool (True = ignore: non-zero pixels); None when unset, FrontEndError if unreadable."""
    if not path:
        return None
    mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FrontEndError(f"mask file '{path}' cannot be read as an image")
    return mask > 0


def make_backend(config, device: torch.device, dtype: torch.dtype) -> Backend:
    """Build the backend a `FrontEndConfig` names (validated by `FrontEnd`); optional ones are imported only then."""
    if config.backend == "lightglue":
        return LightGlueBackend(config, device, dtype)
    if config.backend == "xfeat":
        from lightglue_ros.matching.xfeat_backend import XFeatBackend

        return XFeatBackend(config, device, dtype)
    if config.backend == "hf":
        from lightglue_ros.matching.hf_backend import HFBackend  # transformers is optional: imported for hf only

        return HFBackend(config, device, dtype)
    return OpenCVBackend(config, config.backend)


# ---------------------------------------------------------------------------------------------------------------
# The front end
# ---------------------------------------------------------------------------------------------------------------
class FrontEnd:
    """``track(image, mask=None, stamp=None) -> TrackResult``; ``promote()``; ``reset()``."""

    def __init__(self, config: Optional[FrontEndConfig] = None):
        self.config = config = config or FrontEndConfig()
        if config.backend not in BACKENDS:
            raise FrontEndError(f"unknown backend '{config.backend}' ({' | '.join(BACKENDS)})")
        if config.backend == "lightglue" and config.detector not in DETECTORS:
            raise FrontEndError(f"unknown detector '{config.detector}' ({' | '.join(DETECTORS)})")
        if config.max_keypoints == 0 or config.max_keypoints < -1:
            raise FrontEndError("max_keypoints must be positive (or -1 with a detection threshold), "
                                f"got {config.max_keypoints}")
        device = resolve_device(config.device)  # validated for every backend: a typo must not pass silently
        self.device = device if config.backend in LEARNED else torch.device("cpu")
        self.dtype = resolve_precision(config.precision, self.device, config.backend)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        self.static_mask = load_mask_image(config.static_mask)
        self.backend = make_backend(config, self.device, self.dtype)
        self.reference: Optional[FrameFeatures] = None
        self.last: Optional[FrameFeatures] = None
        self._last_matches: Optional[np.ndarray] = None  # matches of `last` against `reference`
        self._next_id = 0

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return "cpu"

    # ---- reference management -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the reference; the next frame starts a new track (ids keep counting up: they stay unique)."""
        self.reference = self.last = None
        self._last_matches = None

    def promote(self) -> None:
        """Make the last tracked frame the reference, carrying the ids of the points it matched."""
        cur = self.last
        if cur is None:
            return
        ids = np.full(len(cur.keypoints), -1, np.int64)
        if self.reference is not None and self._last_matches is not None and len(self._last_matches):
            ids[self._last_matches[:, 1]] = self.reference.ids[self._last_matches[:, 0]]
        fresh = ids < 0
        ids[fresh] = np.arange(self._next_id, self._next_id + int(fresh.sum()))
        self._next_id += int(fresh.sum())
        cur.ids = ids
        self.reference, self._last_matches = cur, None

    # ---- masks ------------------------------------------------------------------------------------------------
    def _ignore_mask(self, image: np.ndarray, mask: Optional[np.ndarray]) -> tuple[Optional[np.ndarray], str]:
        """Combine the masks into one boolean pixel mask (True = ignore), or return why it cannot be built."""
        h, w = image.shape[:2]
        ignore = None
        for name, m in (("mask", mask), ("static mask", self.static_mask)):
            if m is None:
                continue
            m = np.asarray(m)
            if m.shape[:2] != (h, w):
                return None, f"{name} size {m.shape[1] if m.ndim > 1 else '?'}x{m.shape[0]} != image {w}x{h}"
            m = (m[..., 0] if m.ndim == 3 else m) > 0
            ignore = m if ignore is None else ignore | m
        if self.config.specular_threshold > 0:
            spec = (to_grey(image) >= self.config.specular_threshold).astype(np.uint8)
            # The rim of a highlight is as view-dependent as its core: corners on it do not belong to the scene.
            spec = cv2.dilate(spec, SPECULAR_RIM).astype(bool)
            ignore = spec if ignore is None else ignore | spec
        return ignore, ""

    # ---- tracking ---------------------------------------------------------------------------------------------
    def track(self, image: np.ndarray, mask: Optional[np.ndarray] = None, stamp: Optional[float] = None) -> TrackResult:
        t0 = time.perf_counter()
        tel = Telemetry(device=self.device_name, backend=self.config.backend,
                        n_layers=getattr(self.backend, "n_layers", 0))
        reason = check_image(image)
        if reason:
            return self._fail(stamp, reason, tel, t0)
        try:
            image = to_uint8(normalise_channels(image))
            ignore, reason = self._ignore_mask(image, mask)
            if reason:
                return self._fail(stamp, reason, tel, t0)
            if self.reference is not None and self.reference.size != (image.shape[1], image.shape[0]):
                # A different camera mode: features of the old size cannot be matched meaningfully.
                self.reset()
            kpts, data = self.backend.extract(image)
            tel.backend_info = getattr(self.backend, "info", "")
            t1 = time.perf_counter()
            tel.extract_ms = (t1 - t0) * 1e3
            valid = self._valid_keypoints(kpts, ignore)
            grey = to_grey(image) if self._refines else None
            cur = FrameFeatures(kpts, valid, (image.shape[1], image.shape[0]), stamp, data, grey=grey)
            tel.keypoints1 = int(valid.sum())
            result = self._match(cur, stamp, tel, t1)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            return self._fail(stamp, "GPU out of memory", tel, t0)
        except Exception as exc:  # noqa: BLE001 - track() must never raise on input; the reason says what broke
            return self._fail(stamp, f"front end error: {type(exc).__name__}: {exc}", tel, t0)
        tel.total_ms = (time.perf_counter() - t0) * 1e3
        if self.config.auto_promote or self.reference is None:
            self.promote()
        return result

    def _valid_keypoints(self, kpts: np.ndarray, ignore: Optional[np.ndarray]) -> np.ndarray:
        if ignore is None or len(kpts) == 0:
            return np.ones(len(kpts), bool)
        h, w = ignore.shape
        xi = np.clip(np.round(kpts[:, 0]).astype(int), 0, w - 1)
        yi = np.clip(np.round(kpts[:, 1]).astype(int), 0, h - 1)
        return ~ignore[yi, xi]

    def _match(self, cur: FrameFeatures, stamp, tel: Telemetry, t1: float) -> TrackResult:
        ref = self.reference
        self.last, self._last_matches = cur, None
        if ref is None:
            result = TrackResult.empty(stamp, "first frame (reference)", tel, is_first=True)
            result.kpts1 = cur.keypoints
            return result
        tel.keypoints0 = int(ref.valid.sum())
        if tel.keypoints1 < self.config.min_keypoints or tel.keypoints0 < self.config.min_keypoints:
            result = TrackResult.empty(
                stamp, f"too few keypoints ({tel.keypoints0} reference, {tel.keypoints1} current)", tel)
            result.kpts0, result.kpts1, result.ref_stamp = ref.keypoints, cur.keypoints, ref.stamp
            return result
        raw = self.backend.match(ref, cur)
        tel.stop_layer, tel.pruned0, tel.pruned1 = raw.stop_layer, raw.pruned0, raw.pruned1
        self._last_matches = raw.matches
        ok = len(raw.matches) > 0
        kpts1 = self._refined(ref, cur, raw.matches) if ok and self._refines else cur.keypoints
        tel.match_ms = (time.perf_counter() - t1) * 1e3  # matching and the alignment of the matches
        return TrackResult(
            stamp=stamp, ok=ok, reason="" if ok else "no matches", kpts0=ref.keypoints, kpts1=kpts1,
            matches=raw.matches, scores=raw.scores, track_ids=ref.ids[raw.matches[:, 0]].astype(np.int64),
            telemetry=tel, ref_stamp=ref.stamp,
        )

    @property
    def _refines(self) -> bool:
        return self.config.refine_matches and self.config.backend in REFINED

    @staticmethod
    def _refined(ref: FrameFeatures, cur: FrameFeatures, matches: np.ndarray) -> np.ndarray:
        """Return the current keypoints with the matched ones aligned to their reference patches.

        Only this result sees them: the frame's own keypoints (its descriptors' positions, and its points0 once it
        is the reference) stay as detected, so every TrackResult pairs a detected reference point with its aligned
        match.
        """
        from lightglue_ros.matching.refine import align_points

        kpts1 = cur.keypoints.copy()
        aligned, _ = align_points(ref.grey, cur.grey, ref.keypoints[matches[:, 0]], cur.keypoints[matches[:, 1]])
        kpts1[matches[:, 1]] = aligned
        return kpts1

    def _fail(self, stamp, reason: str, tel: Telemetry, t0: float) -> TrackResult:
        tel.total_ms = (time.perf_counter() - t0) * 1e3
        return TrackResult.empty(stamp, reason, tel)
