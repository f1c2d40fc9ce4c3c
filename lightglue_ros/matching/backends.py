"""Front-end backends: what a frame's features are and how two frames' features match, behind one interface.

A backend has ``extract(image) -> (keypoints (N,2) float32, data)``, computed once per frame, and
``match(ref, cur) -> RawMatches`` between two `FrameFeatures`; ``n_layers`` is its matcher's depth (0 when it has
no layers). ``lightglue`` (ALIKED + LightGlue, ours) and ``orb``/``sift`` (OpenCV) live here, other backends in
modules beside it; `frontend.make_backend` builds the one a `FrontEndConfig` names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import cv2
import numpy as np
import torch

from lightglue_ros.core.errors import LightGlueRosError
from lightglue_ros.core.image import image_to_tensor, to_grey

# OpenCV's default (0.04) leaves low-contrast frames with few points; half of it keeps ~1000 on 640x480 indoor
# frames and the same AUC on the TUM pairs (0.896 at 0.04, 0.02 and 0.01).
DOG_CONTRAST_THRESHOLD = 0.02

# Point-pruning confidence per matcher where the front end's width_confidence is 0 ("the backend's"): measured on
# consecutive TUM fr3 frames (README, "Adaptive depth"). LighterGlue keeps its pose AUC at 0.95 and is faster
# there than at 0.99 (95 vs 114 ms per pair, 1 thread); LightGlue (and transformers' copy of it) keeps 0.99.
WIDTH_CONFIDENCE = {"lightglue": 0.99, "xfeat": 0.95, "hf": 0.99}


class FrontEndError(LightGlueRosError, ValueError):
    """A configuration the front end cannot run with (raised at construction, never from track)."""


# ---------------------------------------------------------------------------------------------------------------
# Per-frame state
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class FrameFeatures:
    """One frame's keypoints, validity, size and the backend's data, kept while it can be a reference."""

    keypoints: np.ndarray  # (N,2) float32 pixels
    valid: np.ndarray  # (N,) bool, False = on an ignored pixel
    size: tuple  # (w, h)
    stamp: Optional[float]
    data: object = None  # backend-specific: descriptors on the device, cached matcher inputs
    ids: Optional[np.ndarray] = None  # (N,) int64 track ids, assigned when the frame becomes the reference
    grey: Optional[np.ndarray] = None  # the image, grey uint8, kept only for refine_matches


@dataclass
class RawMatches:
    """A backend's matches of two frames with scores and the matcher's telemetry (stop layer, pruning)."""

    matches: np.ndarray  # (M,2) int64
    scores: np.ndarray  # (M,) float32
    stop_layer: int = 0
    n_layers: int = 0
    pruned0: int = 0
    pruned1: int = 0


def width_confidence(config) -> float:
    """Return the point-pruning confidence a backend runs with: the config's, or the backend's own when it is 0."""
    return config.width_confidence if config.width_confidence != 0 else WIDTH_CONFIDENCE.get(config.backend, 0.99)


def lightglue_matcher(config, features: str, device: torch.device, attention_precision: str = "fp32"):
    """Build our LightGlue for ``features`` (aliked | xfeat) with the front end's confidences, threshold, weights."""
    from lightglue_ros.matching.lightglue import LightGlue, LightGlueConfig

    conf = LightGlueConfig(features=features, depth_confidence=config.depth_confidence,
                           width_confidence=width_confidence(config), filter_threshold=config.filter_threshold,
                           attention_precision=attention_precision, weights=config.weights)
    return LightGlue(conf).to(device).eval()


def match_cached(matcher, ref: FrameFeatures, cur: FrameFeatures, device: torch.device) -> RawMatches:
    """Match two frames with our LightGlue on the inputs their ``extract`` cached, ignored keypoints masked out.

    ``data`` of both frames holds ``kpts``, ``desc`` and ``prepared`` (``LightGlue.prepare``); the caller chooses the
    autocast around the call (the aliked and xfeat backends differ there).
    """
    d0, d1 = ref.data, cur.data
    masks = {}
    if not ref.valid.all() or not cur.valid.all():
        masks = {"mask0": torch.from_numpy(ref.valid).to(device), "mask1": torch.from_numpy(cur.valid).to(device)}
    r = matcher(d0["kpts"], d0["desc"], d1["kpts"], d1["desc"], prepared0=d0["prepared"], prepared1=d1["prepared"],
                **masks)
    return RawMatches(matches=r.matches.cpu().numpy().astype(np.int64),
                      scores=r.scores.float().cpu().numpy().astype(np.float32), stop_layer=r.stop_layer,
                      n_layers=matcher.conf.n_layers, pruned0=r.pruned0, pruned1=r.pruned1)


PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def resolve_device(name: str) -> torch.device:
    """Return the torch device a ``device`` setting names (auto = CUDA when torch sees one)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FrontEndError("device 'cuda' requested but torch sees no CUDA device (use device: auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise FrontEndError(f"unknown device '{name}' (auto | cpu | cuda)")
    return torch.device(name)


def cpu_has_bf16_matrix_units() -> bool:
    """Say whether this CPU has AMX tiles, where bf16 convolutions and attention run faster than fp32.

    Without them (AVX2, AVX-512 alone) bf16 is emulated or converted and loses; torch's own check, read defensively
    because it is not public API.
    """
    check = getattr(getattr(torch, "cpu", None), "_is_amx_tile_supported", None)
    try:
        return bool(check()) if check is not None else False
    except Exception:  # an old or unusual build: take the safe fp32 path
        return False


def resolve_precision(name: str, device: torch.device, backend: str = "lightglue") -> torch.dtype:
    """Return the compute dtype of a ``precision`` setting for ``backend`` on ``device``.

    auto: fp16 on CUDA; bf16 for xfeat on a CPU with AMX (measured: extraction and attention faster, pose AUC
    kept); fp32 otherwise. fp16 is CUDA only; bf16 is implemented for xfeat on a CPU only (its extraction under
    autocast, its attention calls in bf16; the rest stays fp32).
    """
    if name not in PRECISIONS:
        raise FrontEndError(f"unknown precision '{name}' ({' | '.join(PRECISIONS)})")
    if name == "bf16" and (backend != "xfeat" or device.type != "cpu"):
        raise FrontEndError(f"precision bf16 is implemented for backend xfeat on a CPU, not for {backend} on "
                            f"{device.type} (use auto or fp32; fp16 on CUDA)")
    # fp16 autocast only pays (and is only well supported) on CUDA.
    if device.type == "cuda" and name in ("auto", "fp16"):
        return torch.float16
    if name == "bf16" or (name == "auto" and backend == "xfeat" and device.type == "cpu"
                          and cpu_has_bf16_matrix_units()):
        return torch.bfloat16
    return torch.float32


class Backend(Protocol):
    """What the front end needs of a backend (see the module docstring)."""

    name: str
    n_layers: int

    def extract(self, image: np.ndarray) -> tuple[np.ndarray, object]:
        """Keypoints (N,2) float32 pixels and the backend's own data for `match`."""

    def match(self, ref: FrameFeatures, cur: FrameFeatures) -> RawMatches:
        """Match the reference frame's features against the current frame's."""


# ---------------------------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------------------------
class LightGlueBackend:
    """ALIKED features once per frame + LightGlue matching; the reference frame's matcher inputs are cached."""

    name = "lightglue"

    def __init__(self, config, device: torch.device, dtype: torch.dtype):
        from lightglue_ros.features.aliked import ALIKED, AlikedConfig

        self.config, self.device, self.dtype = config, device, dtype
        self.extractor = ALIKED(
            AlikedConfig(
                model_name=config.aliked_model,
                max_keypoints=config.max_keypoints,
                detection_threshold=config.detection_threshold,
                nms_radius=config.nms_radius,
                weights=config.aliked_weights,
            )
        ).to(device).eval()
        self.matcher = lightglue_matcher(config, "aliked", device)
        self.n_layers = self.matcher.conf.n_layers
        # DoG keypoints: SIFT's scale-space extrema, sub-pixel and scale-covariant. On the TUM 1 s pairs they
        # lift LightGlue's pose AUC@10 from 0.864 (ALIKED's keypoints) to 0.896 (SIFT: 0.901) and keep twice
        # SIFT's on hard pairs; on small synthetic frames they track worse (README, "Accuracy").
        self.dog = cv2.SIFT_create(nfeatures=0, contrastThreshold=DOG_CONTRAST_THRESHOLD) \
            if config.detector == "dog" else None

    def dog_keypoints(self, image: np.ndarray) -> np.ndarray:
        """(N,2) float32 DoG keypoints, each position once (SIFT repeats it per orientation), strongest first."""
        kps = self.dog.detect(to_grey(image), None)
        if not kps:
            return np.zeros((0, 2), np.float32)
        pts = np.array([k.pt for k in kps], np.float32)
        order = np.argsort([-k.response for k in kps], kind="stable")
        _, first = np.unique(pts[order], axis=0, return_index=True)
        keep = order[np.sort(first)]
        if self.config.max_keypoints > 0:
            keep = keep[: self.config.max_keypoints]
        return pts[keep]

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.dtype == torch.float16)

    @torch.inference_mode()
    def extract(self, image: np.ndarray):
        given = None if self.dog is None else torch.from_numpy(self.dog_keypoints(image)).to(self.device)
        with self._autocast():
            feats = self.extractor.extract(image_to_tensor(
                image if self.config.colour else to_grey(image), self.device, rgb=True), keypoints=given)
            kpts = feats.keypoints.float()
            size = torch.tensor([image.shape[1], image.shape[0]], device=self.device, dtype=torch.float32)
            prepared = self.matcher.prepare(kpts, feats.descriptors, size)
        return kpts.cpu().numpy().astype(np.float32), {"kpts": kpts, "desc": feats.descriptors, "prepared": prepared}

    @torch.inference_mode()
    def match(self, ref: FrameFeatures, cur: FrameFeatures) -> RawMatches:
        with self._autocast():
            return match_cached(self.matcher, ref, cur, self.device)


class OpenCVBackend:
    """ORB or SIFT with brute-force mutual nearest neighbours and Lowe's ratio test (the classic baseline)."""

    def __init__(self, config, name: str):
        self.config, self.name = config, name
        n = max(1, config.max_keypoints)
        if name == "orb":
            self.detector = cv2.ORB_create(nfeatures=n, fastThreshold=10)
            self.norm = cv2.NORM_HAMMING
        else:
            self.detector = cv2.SIFT_create(nfeatures=n)
            self.norm = cv2.NORM_L2
        self.bf = cv2.BFMatcher(self.norm)

    def extract(self, image: np.ndarray):
        kps, desc = self.detector.detectAndCompute(to_grey(image), None)
        kpts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
        return kpts, desc

    def match(self, ref: FrameFeatures, cur: FrameFeatures) -> RawMatches:
        i0, i1 = np.where(ref.valid)[0], np.where(cur.valid)[0]
        if len(i0) < 2 or len(i1) < 2 or ref.data is None or cur.data is None:
            return RawMatches(np.zeros((0, 2), np.int64), np.zeros(0, np.float32))
        d0, d1 = ref.data[i0], cur.data[i1]
        fwd = self.bf.knnMatch(d0, d1, k=2)
        back = {m[0].queryIdx: m[0].trainIdx for m in self.bf.knnMatch(d1, d0, k=1) if m}
        pairs, scores = [], []
        for m in fwd:
            if len(m) < 2:
                continue
            best, second = m
            if best.distance >= self.config.ratio_test * second.distance or back.get(best.trainIdx) != best.queryIdx:
                continue
            pairs.append((i0[best.queryIdx], i1[best.trainIdx]))
            # A score in [0,1] comparable in spirit to LightGlue's: how decisive the ratio test was.
            scores.append(1.0 - best.distance / max(second.distance, 1e-6))
        matches = np.array(pairs, np.int64).reshape(-1, 2)
        return RawMatches(matches, np.array(scores, np.float32))
