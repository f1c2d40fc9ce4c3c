"""Hugging Face keypoint matchers as a front-end backend: SuperPoint+LightGlue and EfficientLoFTR (``transformers``).

``backend: hf`` with ``hf_model`` = a hub id (``ETH-CVG/lightglue_superpoint``, ``zju-community/efficientloftr``)
or a local folder holding a model and its image processor (``save_pretrained``). ``transformers`` is an optional
extra (``pip install .[hf]``) and is imported here only, when the backend is built.

Two modes, one result type (`RawMatches` into the frames' keypoint arrays, as for every backend):

* **streaming** (LightGlue + SuperPoint): the model exposes its keypoint detector (``model.keypoint_detector``)
  and its pair matcher (``model._match_image_pair``, private in transformers 5.23.0), so each frame's SuperPoint
  keypoints and descriptors are computed once in ``extract`` and ``match`` runs LightGlue only. Keypoints on
  masked pixels go to LightGlue as padding (out of attention, never matched); track ids are the front end's.
* **pairwise** (EfficientLoFTR, detector-free; LightGlue too if a future transformers hides those two): the
  model takes both images, so ``extract`` only preprocesses the image and returns a *candidate grid*, one point
  per pixel. The front end marks each candidate valid or masked, which is how the backend learns the frame's
  exact pixel mask without a change to the front end. ``match`` runs the pair, maps the matches to input pixels,
  drops those on masked pixels of either frame, and then rewrites both frames' arrays in place:
  the current frame's keypoints become its matched points (so every one of them is matched, and ``promote``
  hands each the reference's id); the reference's new points are associated with the points it already has
  (``hf_track_radius`` pixels, one to one, nearest first, against where each point was first seen) so a
  physical point tracked through frames keeps its index and id, and the others are appended with fresh ids.
  Associated points take this pair's position, so every `TrackResult` pairs the model's own coordinates.
  Ids handed out here come from the backend's counter: in pairwise mode every id a `TrackResult` shows is one of
  them (the front end's ids of a never-matched candidate grid are replaced before they are seen).
  A pair with fewer than ``min_keypoints`` matches returns no matches and leaves both frames as they were.
  Before a frame is matched its keypoints are the candidate grid (``Telemetry.keypoints1`` counts the unmasked
  pixels then). Detector-free matches rarely hit the same pixel twice, so tracks are shorter than LightGlue's.

Coordinates: the image processor resizes to its own size (640x480 by default, aspect not kept); the model's
points (pixel centres of the processed image) map back per axis with the half-pixel convention the resize
itself uses, ``x_in = (x + 0.5) * W / w - 0.5``. transformers' ``post_process_keypoint_matching`` is not used:
it truncates the points to integers and, for EfficientLoFTR, pairs the two images' matches by position.

EfficientLoFTR in transformers 5.23.0 stores the mutual matches of the two images in two differently ordered
rows (one indexed by the first image's cells, one by the second's) and then treats column k of both as one
match, in the fine refinement and in its post-processing; that is right only when the matches keep raster order
(a pure translation). A probe at load time detects this and makes both rows follow the first image's cells.

Telemetry: ``stop_layer`` and ``pruned0/1`` from LightGlue's per-point ``prune`` output, 0 for EfficientLoFTR;
``backend_info`` names the model type, the mode and the processor's resize, e.g.
``lightglue streaming, resize 500x300->640x480``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from lightglue_ros.matching.backends import FrameFeatures, FrontEndError, RawMatches, width_confidence

INSTALL_HINT = "pip install .[hf]"
TRANSFORMERS_VERSION = "5.23.0"  # the version this backend was written and tested against (requirements/hf.txt)
SUPPORTED = ("efficientloftr", "lightglue")  # superglue loads too, but its output was never checked here


@dataclass
class StreamFrame:
    """Streaming mode: a frame's SuperPoint output, in processed-image pixels, kept on the device."""

    kpts: torch.Tensor  # (N,2) float
    desc: torch.Tensor  # (N,D)
    size: tuple  # processed (h, w)


@dataclass
class PairFrame:
    """Pairwise mode: a frame's processed image and what matching has learnt about its points."""

    pixels: torch.Tensor  # (3,h,w) processed image on the device
    fresh: bool = True  # keypoints are still the candidate grid (never matched)
    ignore: Optional[np.ndarray] = None  # HxW bool, True = masked pixel (read once from the grid's valid flags)
    mask_read: bool = False
    anchors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # first-seen positions


def to_input(pts: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Processed-image pixels -> input-image pixels (pixel centres, per-axis scale = input / processed size)."""
    return ((pts + 0.5) * scale - 0.5).astype(np.float32)


def to_processed(pts: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Input-image pixels -> processed-image pixels (the inverse of `to_input`)."""
    return ((pts + 0.5) / scale - 0.5).astype(np.float32)


def _import_transformers():
    try:
        import transformers
    except ImportError as exc:
        raise FrontEndError(f"backend 'hf' needs the transformers package, which cannot be imported ({exc}): "
                            f"{INSTALL_HINT} (transformers=={TRANSFORMERS_VERSION})") from exc
    return transformers


def _offline() -> bool:
    from huggingface_hub import constants

    # The constant is read when huggingface_hub is imported; the variable may have been set since.
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _not_found(src: str, local: bool, exc: Exception) -> str:
    exc = _one_line(exc)
    if os.path.isdir(src):
        return (f"hf_model folder '{src}' holds no loadable transformers model ({exc}); save one there with "
                f"model.save_pretrained(folder) and processor.save_pretrained(folder)")
    where = "the hub is off (HF_HUB_OFFLINE) and it is not in the Hugging Face cache" if local \
        else "the hub did not provide it"
    return (f"hf_model '{src}' cannot be loaded: it is not a local folder and {where} ({exc}). Fix: on a machine "
            f"with the hub run `hf download {src}` (fills the cache) or `hf download {src} --local-dir DIR` and "
            f"pass --hf-model DIR; or unset HF_HUB_OFFLINE where the hub is reachable")


def align_loftr_slots(model) -> bool:
    """Make EfficientLoFTR's two match rows describe the same match per column; True when a fix was applied.

    The probe feeds the coarse matcher a non-monotone one-to-one score table and checks whether column k of both
    rows is one of its pairs. Where it is (a fixed transformers) the model is left alone.
    """
    original = model._get_matches_from_scores
    b = int(model.config.coarse_matching_border_removal)
    side = 2 * b + 2  # a 2x2 interior survives the border removal
    cells = [r * side + c for r in (b, b + 1) for c in (b, b + 1)]
    pairs = {i: j for i, j in zip(cells, reversed(cells))}
    scores = torch.zeros(1, side * side, side * side)
    for i, j in pairs.items():
        scores[0, i, j] = float(model.config.coarse_matching_threshold) + 2.0
    idx, _ = original(scores.view(1, side, side, side, side))
    both = (idx[0, 0] > -1) & (idx[0, 1] > -1)
    found = {(int(i), int(j)) for i, j in zip(idx[0, 0][both], idx[0, 1][both])}
    if found == set(pairs.items()):
        return False

    def aligned(confidence):
        idx, sc = original(confidence)
        j, s = idx[:, 1], sc[:, 1]  # row 1 is indexed by the first image's cells: cell i -> its match j
        i = torch.arange(j.shape[-1], device=j.device).expand_as(j)
        i = torch.where(j > -1, i, torch.full_like(i, -1))
        return torch.stack([i, j], 1), torch.stack([s, s], 1)

    model._get_matches_from_scores = aligned
    return True


class HFBackend:
    """A transformers keypoint-matching model (``AutoModelForKeypointMatching``) behind the front-end contract."""

    name = "hf"

    def __init__(self, config, device: torch.device, dtype: torch.dtype):
        self.config, self.device, self.dtype = config, device, dtype
        src = config.hf_model
        if not src:
            raise FrontEndError("backend 'hf' needs hf_model: a hub id (ETH-CVG/lightglue_superpoint, "
                                "zju-community/efficientloftr) or a folder with a saved model and image processor")
        transformers = _import_transformers()
        from transformers.models.auto.modeling_auto import MODEL_FOR_KEYPOINT_MATCHING_MAPPING_NAMES as MATCHERS

        local = os.path.isdir(src) or _offline()
        try:
            model_config = transformers.AutoConfig.from_pretrained(src, local_files_only=local)
        except (OSError, ValueError) as exc:
            raise FrontEndError(_not_found(src, local, exc)) from exc
        self.model_type = model_config.model_type
        if self.model_type not in MATCHERS:
            raise FrontEndError(f"hf_model '{src}' is a '{self.model_type}' model, not a keypoint-matching model "
                                f"(AutoModelForKeypointMatching loads {', '.join(MATCHERS)})")
        if self.model_type not in SUPPORTED:
            raise FrontEndError(f"hf_model '{src}' is a '{self.model_type}' keypoint matcher; the hf backend "
                                f"supports {' and '.join(SUPPORTED)}")
        self._configure(model_config)
        try:
            self.model = transformers.AutoModelForKeypointMatching.from_pretrained(
                src, config=model_config, local_files_only=local)
        except (OSError, ValueError) as exc:
            raise FrontEndError(_not_found(src, local, exc)) from exc
        # Without torchvision the processors fall back to their PIL twins anyway; asking for it skips the warning.
        backend = None if transformers.utils.is_torchvision_available() else "pil"
        try:
            self.processor = transformers.AutoImageProcessor.from_pretrained(src, local_files_only=local,
                                                                             backend=backend)
        except (OSError, ValueError) as exc:
            raise FrontEndError(f"hf_model '{src}' has no usable image processor (preprocessor_config.json, "
                                f"saved with processor.save_pretrained(folder)): {exc}") from exc
        self.model = self.model.to(device).eval().requires_grad_(False)
        self.streaming = self.model_type == "lightglue" and hasattr(self.model, "keypoint_detector") \
            and hasattr(self.model, "_match_image_pair")
        self.n_layers = int(model_config.num_hidden_layers) if self.model_type == "lightglue" else 0
        self.loftr_fixed = self.model_type == "efficientloftr" and align_loftr_slots(self.model)
        self.mode = "streaming" if self.streaming else "pairwise"
        self.info = f"{self.model_type} {self.mode}"  # completed with the resize by extract()
        self._next_id = 0
        self._grids: dict = {}

    def _configure(self, mc) -> None:
        """Carry the front end's settings into the model's config before the model is built from it."""
        cfg, thr = self.config, self.config.hf_threshold
        if self.model_type == "lightglue":
            width = width_confidence(cfg)
            if (cfg.depth_confidence > 0) != (width > 0):
                # transformers 5.23.0's LightGlue fails with only one of them on (UnboundLocalError, empty reshape).
                raise FrontEndError(f"backend 'hf' (transformers' LightGlue) runs adaptive depth and width both on "
                                    f"or both off, got depth_confidence={cfg.depth_confidence}, "
                                    f"width_confidence={width}")
            mc.depth_confidence, mc.width_confidence = float(cfg.depth_confidence), float(width)
            mc.keypoint_detector_config.max_keypoints = int(cfg.max_keypoints)
            if thr >= 0:
                mc.filter_threshold = float(thr)
        elif thr >= 0:
            mc.coarse_matching_threshold = float(thr)

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.dtype == torch.float16)

    # ---- extraction ---------------------------------------------------------------------------------------------
    def _preprocess(self, image: np.ndarray) -> torch.Tensor:
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        # The processors take pairs only; a frame is processed once, as a pair with itself.
        out = self.processor([rgb, rgb], return_tensors="pt", input_data_format="channels_last")
        return out["pixel_values"][0, 0].to(self.device)

    def _grid(self, w: int, h: int) -> np.ndarray:
        """Every pixel of a w x h image, row-major (index = y * w + x); cached, never written to."""
        if (w, h) not in self._grids:
            ys, xs = np.mgrid[0:h, 0:w]
            grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
            grid.setflags(write=False)
            self._grids = {(w, h): grid}  # one camera mode at a time
        return self._grids[(w, h)]

    @torch.inference_mode()
    def extract(self, image: np.ndarray):
        """Preprocess the frame once; streaming: its SuperPoint keypoints; pairwise: the candidate grid."""
        pixels = self._preprocess(image)
        (H, W), (h, w) = image.shape[:2], pixels.shape[-2:]
        resize = f"resize {W}x{H}->{w}x{h}" if (W, H) != (w, h) else f"no resize ({W}x{H})"
        self.info = f"{self.model_type} {self.mode}, {resize}"
        scale = np.array([W / w, H / h], np.float32)
        if not self.streaming:
            return self._grid(W, H), PairFrame(pixels)
        with self._autocast():
            det = self.model.keypoint_detector(pixels[None])
        keep = det.mask[0] > 0
        kpts = det.keypoints[0][keep].float() * torch.tensor([w, h], device=self.device, dtype=torch.float32)
        return to_input(kpts.cpu().numpy(), scale), StreamFrame(kpts, det.descriptors[0][keep], (h, w))

    # ---- matching -----------------------------------------------------------------------------------------------
    def match(self, ref: FrameFeatures, cur: FrameFeatures) -> RawMatches:
        """Match ``cur`` against ``ref``; pairwise mode also rewrites both frames' arrays (module docstring)."""
        return self._match_streaming(ref, cur) if self.streaming else self._match_pair(ref, cur)

    @torch.inference_mode()
    def _match_streaming(self, ref: FrameFeatures, cur: FrameFeatures) -> RawMatches:
        a, b = ref.data, cur.data
        n0, n1 = len(a.kpts), len(b.kpts)
        n, dim = max(n0, n1), a.desc.shape[-1]
        kpts = torch.zeros(1, 2, n, 2, device=self.device)
        desc = torch.zeros(1, 2, n, dim, device=self.device, dtype=a.desc.dtype)
        mask = torch.zeros(1, 2, n, device=self.device, dtype=torch.int)
        kpts[0, 0, :n0], kpts[0, 1, :n1] = a.kpts, b.kpts
        desc[0, 0, :n0], desc[0, 1, :n1] = a.desc, b.desc
        mask[0, 0, :n0] = torch.from_numpy(ref.valid).to(self.device)
        mask[0, 1, :n1] = torch.from_numpy(cur.valid).to(self.device)
        h, w = a.size
        with self._autocast():
            matches, scores, prune, _, _ = self.model._match_image_pair(kpts, desc, h, w, mask=mask)
        return self._detector_raw(matches.reshape(-1, 2, n)[0, 0, :n0], scores.reshape(-1, 2, n)[0, 0, :n0],
                                  prune.reshape(-1, 2, n)[0], ref.valid, cur.valid)

    def _detector_raw(self, m0, s0, prune, valid0: np.ndarray, valid1: np.ndarray) -> RawMatches:
        """Turn LightGlue's per-reference-point output into RawMatches, masked points and low scores dropped."""
        m0, s0 = m0.long().cpu().numpy(), s0.float().cpu().numpy()
        n1 = len(valid1)
        keep = (m0 > -1) & (m0 < n1) & valid0 & (s0 > max(self.config.hf_threshold, 0.0))
        keep[keep] &= valid1[m0[keep]]
        i = np.nonzero(keep)[0]
        stop, pruned0, pruned1 = self._prune_stats(prune, valid0, valid1)
        return RawMatches(np.stack([i, m0[i]], axis=1).astype(np.int64), s0[i].astype(np.float32),
                          stop_layer=stop, n_layers=self.n_layers, pruned0=pruned0, pruned1=pruned1)

    @staticmethod
    def _prune_stats(prune, valid0: np.ndarray, valid1: np.ndarray) -> tuple[int, int, int]:
        """Read the stop layer and pruning from ``prune``: the layers each point took part in (stop = the largest)."""
        p = prune.long().cpu().numpy()
        p0, p1 = p[0, : len(valid0)][valid0], p[1, : len(valid1)][valid1]
        if not len(p0) and not len(p1):
            return 0, 0, 0
        stop = int(max(p0.max(initial=0), p1.max(initial=0)))
        return stop, int((p0 < stop).sum()), int((p1 < stop).sum())

    @torch.inference_mode()
    def _match_pair(self, ref: FrameFeatures, cur: FrameFeatures) -> RawMatches:
        for f in (ref, cur):
            self._read_mask(f)
        a, b = ref.data, cur.data
        h, w = a.pixels.shape[-2:]
        with self._autocast():
            out = self.model(pixel_values=torch.stack([a.pixels, b.pixels])[None])
        p0, p1, scores, stop, pr0, pr1 = self._pairs(out, w, h)
        W, H = ref.size
        scale = np.array([W / w, H / h], np.float32)
        p0, p1 = to_input(p0, scale), to_input(p1, scale)
        keep = (scores > max(self.config.hf_threshold, 0.0)) & self._usable(p0, a.ignore, W, H) \
            & self._usable(p1, b.ignore, W, H)
        order = np.nonzero(keep)[0][np.argsort(-scores[keep], kind="stable")]
        if self.config.max_keypoints > 0:
            order = order[: self.config.max_keypoints]
        order = np.sort(order)
        empty = RawMatches(np.zeros((0, 2), np.int64), np.zeros(0, np.float32), stop, self.n_layers, pr0, pr1)
        if len(order) < max(self.config.min_keypoints, 1):
            return empty
        p0, p1, scores = p0[order], p1[order], scores[order]
        idx0 = self._associate(ref, p0)
        cur.keypoints, cur.valid = p1, np.ones(len(p1), bool)
        b.fresh, b.anchors = False, p1.copy()
        matches = np.stack([idx0, np.arange(len(p1))], axis=1).astype(np.int64)
        return RawMatches(matches, scores.astype(np.float32), stop, self.n_layers, pr0, pr1)

    def _pairs(self, out, w: int, h: int):
        """Return the model's matched pairs in processed-image pixels, their scores, and LightGlue's layer stats."""
        size = torch.tensor([w, h], device=out.keypoints.device, dtype=torch.float32)
        kp = (out.keypoints[0].float() * size).cpu().numpy()  # (2,N,2)
        m, s = out.matches[0].long().cpu().numpy(), out.matching_scores[0].float().cpu().numpy()
        if getattr(out, "mask", None) is not None:  # detector-based: row 0 indexes the second image's keypoints
            valid = out.mask[0].cpu().numpy() > 0
            n0, n1 = int(valid[0].sum()), int(valid[1].sum())
            i = np.nonzero((m[0, :n0] > -1) & (m[0, :n0] < n1))[0]
            stop, pr0, pr1 = (self._prune_stats(out.prune[0], valid[0, :n0], valid[1, :n1])
                              if getattr(out, "prune", None) is not None else (0, 0, 0))
            return kp[0, i], kp[1, m[0, i]], s[0, i], stop, pr0, pr1
        k = np.nonzero((m[0] > -1) & (m[1] > -1))[0]  # detector-free: column k is one match (align_loftr_slots)
        return kp[0, k], kp[1, k], s[0, k], 0, 0, 0

    @staticmethod
    def _usable(pts: np.ndarray, ignore: Optional[np.ndarray], w: int, h: int) -> np.ndarray:
        """Inside the image and not on a masked pixel (rounded as the front end rounds keypoints)."""
        inside = (pts[:, 0] > -0.5) & (pts[:, 0] < w - 0.5) & (pts[:, 1] > -0.5) & (pts[:, 1] < h - 0.5)
        if ignore is None:
            return inside
        xi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
        yi = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
        return inside & ~ignore[yi, xi]

    @staticmethod
    def _read_mask(frame: FrameFeatures) -> None:
        """Read the frame's pixel mask from the front end's validity of every candidate pixel."""
        st = frame.data
        if st.mask_read or not st.fresh:
            return
        w, h = frame.size
        st.ignore = None if frame.valid.all() else ~frame.valid.reshape(h, w)
        st.mask_read = True

    def _fresh_ids(self, n: int) -> np.ndarray:
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return ids

    def _associate(self, ref: FrameFeatures, p0: np.ndarray) -> np.ndarray:
        """Index this pair's reference points in the reference's (rewritten) arrays; see the module docstring."""
        st = ref.data
        if st.fresh:  # arrays are still the candidate grid: this pair's points replace them
            anchors, kpts, ids = np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, np.int64)
        else:
            anchors, kpts, ids = st.anchors, ref.keypoints, ref.ids
        idx = np.full(len(p0), -1, np.int64)
        radius = self.config.hf_track_radius
        if len(anchors) and radius > 0:
            from scipy.spatial import cKDTree

            dist, near = cKDTree(anchors).query(p0, distance_upper_bound=radius)
            cand = np.argsort(dist, kind="stable")
            cand = cand[np.isfinite(dist[cand])]
            _, first = np.unique(near[cand], return_index=True)  # each old point to its nearest new one only
            win = cand[first]
            idx[win] = near[win]
        new = idx < 0
        idx[new] = len(kpts) + np.arange(int(new.sum()))
        kpts = np.concatenate([kpts, p0[new]]).astype(np.float32)
        kpts[idx[~new]] = p0[~new]  # this pair's own coordinates; the anchors keep where each point was first seen
        ref.keypoints, ref.valid = kpts, np.ones(len(kpts), bool)
        ref.ids = np.concatenate([ids, self._fresh_ids(int(new.sum()))])
        st.anchors, st.fresh = np.concatenate([anchors, p0[new]]).astype(np.float32), False
        return idx
