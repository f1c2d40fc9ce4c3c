"""Streaming front end: features once per frame, matched against a reference frame, persistent track ids.

``FrontEnd.track(image)`` extracts the new frame's features exactly once, matches them against the reference
frame and returns a `TrackResult`. The reference is the previous frame (``auto_promote=True``, the default) or a
keyframe chosen by the caller, who calls ``promote()`` to make the last tracked frame the next reference.

Backends share one interface and one result type, so accuracy and speed compare with one flag:
``lightglue`` (ALIKED + LightGlue, ours), ``orb`` and ``sift`` (OpenCV, mutual nearest neighbours + ratio test).

Masks: pixels to ignore come from a per-call mask, a static mask image (the robot's body) and, when enabled,
a specular threshold (pixels at or above it). Keypoints on ignored pixels are kept out of attention and are never
matched (LightGlue's keypoint masks; for ORB/SIFT they are dropped before matching).

Track ids: a point matched through consecutive frames keeps its id. Ids are handed out when a frame becomes
the reference: its matched points inherit the reference's ids, the others get fresh ones.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import torch

from .types import Telemetry, TrackResult

BACKENDS = ("lightglue", "orb", "sift", "hf")
DETECTORS = ("aliked", "dog")  # where the LightGlue backend puts its keypoints (ALIKED describes both)
# OpenCV's default (0.04) leaves low-contrast frames with few points; half of it keeps ~1000 on 640x480 indoor
# frames and the same AUC on the TUM pairs (0.896 at 0.04, 0.02 and 0.01).
DOG_CONTRAST_THRESHOLD = 0.02
SPECULAR_RIM = np.ones((7, 7), np.uint8)  # specular masks grow by 3 px


@dataclass
class FrontEndConfig:
    backend: str = "lightglue"  # lightglue | orb | sift | hf
    max_keypoints: int = 1024  # top-k keypoints per frame (ALIKED, ORB, SIFT)
    detection_threshold: float = 0.0  # ALIKED threshold mode when > 0 (then max_keypoints caps the count)
    nms_radius: int = 2
    aliked_model: str = "aliked-n16"  # aliked-t16 | aliked-n16 | aliked-n16rot | aliked-n32
    # lightglue backend's keypoints: ALIKED's score map (aliked) or OpenCV's difference-of-Gaussians (dog: more
    # precise poses on easy real pairs, less robust on small or washed-out frames, ~30 % slower on a CPU).
    detector: str = "aliked"
    depth_confidence: float = 0.95  # adaptive depth (early exit); -1 disables
    width_confidence: float = 0.99  # adaptive width (pruning); -1 disables
    filter_threshold: float = 0.1  # minimum match score
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | fp16 (fp16 on CUDA only)
    num_threads: int = 0  # torch CPU threads; 0 = leave torch's default
    weights: str = ""  # explicit LightGlue checkpoint path ("" = search, see models/weights.py)
    aliked_weights: str = ""  # explicit ALIKED checkpoint path
    colour: bool = True  # feed colour to ALIKED when the image has it (grey is replicated otherwise)
    specular_threshold: int = 0  # mask pixels >= this brightness (0 = off)
    static_mask: str = ""  # path of a mono image, non-zero = ignore (robot body)
    min_keypoints: int = 8  # fewer than this in a frame: no matching, typed reason
    auto_promote: bool = True  # True: every frame becomes the next reference; False: caller calls promote()
    ratio_test: float = 0.8  # ORB/SIFT: Lowe's ratio test
    # lightglue backend: move each matched current-frame point to where the reference point's patch fits best
    # (sub-pixel, translation only; refine.py). ORB and SIFT stay the classic baselines.
    refine_matches: bool = True
    # hf backend (transformers' keypoint matchers, hf_backend.py; needs `pip install .[hf]`)
    hf_model: str = ""  # hub id (ETH-CVG/lightglue_superpoint, zju-community/efficientloftr) or a saved folder
    hf_threshold: float = -1.0  # match score threshold; < 0 keeps the model's own (its config's)
    hf_track_radius: float = 2.0  # pixels: detector-free matches within this of a reference point keep its id


class FrontEndError(ValueError):
    """A configuration the front end cannot run with (raised at construction, never from track)."""


# ---------------------------------------------------------------------------------------------------------------
# Per-frame state
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class FrameFeatures:
    keypoints: np.ndarray  # (N,2) float32 pixels
    valid: np.ndarray  # (N,) bool, False = on an ignored pixel
    size: tuple  # (w, h)
    stamp: Optional[float]
    data: object = None  # backend-specific: descriptors on the device, cached matcher inputs
    ids: Optional[np.ndarray] = None  # (N,) int64 track ids, assigned when the frame becomes the reference
    grey: Optional[np.ndarray] = None  # the image, grey uint8, kept only for refine_matches


@dataclass
class RawMatches:
    matches: np.ndarray  # (M,2) int64
    scores: np.ndarray  # (M,) float32
    stop_layer: int = 0
    n_layers: int = 0
    pruned0: int = 0
    pruned1: int = 0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FrontEndError("device 'cuda' requested but torch sees no CUDA device (use device: auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise FrontEndError(f"unknown device '{name}' (auto | cpu | cuda)")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    if name not in ("auto", "fp32", "fp16"):
        raise FrontEndError(f"unknown precision '{name}' (auto | fp32 | fp16)")
    # fp16 autocast only pays (and is only well supported) on CUDA.
    if device.type == "cuda" and name in ("auto", "fp16"):
        return torch.float16
    return torch.float32


def to_grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Accept uint8, uint16 (mono16 cameras) and float in [0,1]; everything downstream is uint8."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {image.dtype}")


def check_image(image) -> str:
    """Reason the image cannot be used, or ''."""
    if image is None:
        return "no image"
    if not isinstance(image, np.ndarray):
        return f"image is not an array ({type(image).__name__})"
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        return f"image has unsupported shape {image.shape}"
    if image.size == 0 or min(image.shape[:2]) == 0:
        return "empty image"
    if min(image.shape[:2]) < 16:
        return f"image too small ({image.shape[1]}x{image.shape[0]}, need at least 16x16)"
    if image.dtype not in (np.uint8, np.uint16) and not np.issubdtype(image.dtype, np.floating):
        return f"unsupported image dtype {image.dtype}"
    return ""


def load_mask_image(path: str) -> Optional[np.ndarray]:
    """A mask file -> HxW bool (True = ignore: non-zero pixels); None when unset. Unreadable -> FrontEndError."""
    if not path:
        return None
    mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FrontEndError(f"mask file '{path}' cannot be read as an image")
    return mask > 0


def normalise_channels(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[2] == 4:
        return image[..., :3]  # RGBA: alpha carries no texture
    return image


# ---------------------------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------------------------
class LightGlueBackend:
    """ALIKED features once per frame + LightGlue matching; the reference frame's matcher inputs are cached."""

    name = "lightglue"

    def __init__(self, config: FrontEndConfig, device: torch.device, dtype: torch.dtype):
        from .models.aliked import ALIKED, AlikedConfig
        from .models.lightglue import LightGlue, LightGlueConfig

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
        self.matcher = LightGlue(
            LightGlueConfig(
                features="aliked",
                depth_confidence=config.depth_confidence,
                width_confidence=config.width_confidence,
                filter_threshold=config.filter_threshold,
                weights=config.weights,
            )
        ).to(device).eval()
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

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        if image.ndim == 2 or not self.config.colour:
            grey = to_grey(image)
            image = np.repeat(grey[..., None], 3, axis=2)  # ALIKED was trained on RGB: replicate grey
        t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device, non_blocking=True)
        return t.permute(2, 0, 1)[None].float().div_(255.0)

    @torch.inference_mode()
    def extract(self, image: np.ndarray):
        given = None if self.dog is None else torch.from_numpy(self.dog_keypoints(image)).to(self.device)
        with self._autocast():
            feats = self.extractor.extract(self._tensor(image), keypoints=given)
            kpts = feats.keypoints.float()
            size = torch.tensor([image.shape[1], image.shape[0]], device=self.device, dtype=torch.float32)
            prepared = self.matcher.prepare(kpts, feats.descriptors, size)
        return kpts.cpu().numpy().astype(np.float32), {"kpts": kpts, "desc": feats.descriptors, "prepared": prepared}

    @torch.inference_mode()
    def match(self, ref: FrameFeatures, cur: FrameFeatures) -> RawMatches:
        d0, d1 = ref.data, cur.data
        masks = {}
        if not ref.valid.all() or not cur.valid.all():
            masks = {
                "mask0": torch.from_numpy(ref.valid).to(self.device),
                "mask1": torch.from_numpy(cur.valid).to(self.device),
            }
        with self._autocast():
            r = self.matcher(d0["kpts"], d0["desc"], d1["kpts"], d1["desc"],
                             prepared0=d0["prepared"], prepared1=d1["prepared"], **masks)
        return RawMatches(
            matches=r.matches.cpu().numpy().astype(np.int64),
            scores=r.scores.float().cpu().numpy().astype(np.float32),
            stop_layer=r.stop_layer, n_layers=self.n_layers, pruned0=r.pruned0, pruned1=r.pruned1,
        )


class OpenCVBackend:
    """ORB or SIFT with brute-force mutual nearest neighbours and Lowe's ratio test (the classic baseline)."""

    def __init__(self, config: FrontEndConfig, name: str):
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
            raise FrontEndError(f"max_keypoints must be positive (or -1 with a detection threshold), got {config.max_keypoints}")
        device = resolve_device(config.device)  # validated for every backend: a typo must not pass silently
        self.device = device if config.backend in ("lightglue", "hf") else torch.device("cpu")
        self.dtype = resolve_precision(config.precision, self.device)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        self.static_mask = load_mask_image(config.static_mask)
        if config.backend == "lightglue":
            self.backend = LightGlueBackend(config, self.device, self.dtype)
        elif config.backend == "hf":
            from .hf_backend import HFBackend  # transformers is optional: imported only for this backend

            self.backend = HFBackend(config, self.device, self.dtype)
        else:
            self.backend = OpenCVBackend(config, config.backend)
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
        """Combined boolean pixel mask (True = ignore), or a reason it cannot be built."""
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
            result = TrackResult.empty(stamp, f"too few keypoints ({tel.keypoints0} reference, {tel.keypoints1} current)", tel)
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
        return self.config.refine_matches and self.config.backend == "lightglue"

    @staticmethod
    def _refined(ref: FrameFeatures, cur: FrameFeatures, matches: np.ndarray) -> np.ndarray:
        """The current keypoints with the matched ones aligned to their reference patches. Only this result sees
        them: the frame's own keypoints (its descriptors' positions, and its points0 once it is the reference)
        stay as detected, so every TrackResult pairs a detected reference point with its aligned match."""
        from .refine import align_points

        kpts1 = cur.keypoints.copy()
        aligned, _ = align_points(ref.grey, cur.grey, ref.keypoints[matches[:, 0]], cur.keypoints[matches[:, 1]])
        kpts1[matches[:, 1]] = aligned
        return kpts1

    def _fail(self, stamp, reason: str, tel: Telemetry, t0: float) -> TrackResult:
        tel.total_ms = (time.perf_counter() - t0) * 1e3
        return TrackResult.empty(stamp, reason, tel)
