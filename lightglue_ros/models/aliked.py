"""ALIKED keypoint detector and descriptor in plain PyTorch (no torchvision needed).

ALIKED (Zhao et al., "ALIKED: A Lighter Keypoint and Descriptor Extraction Network via Deformable
Transformation", IEEE TIM 2023) in four parts:

  1. feature encoder: four blocks at 1, 1/2, 1/8 and 1/32 resolution; the two coarse blocks use deformable
     3x3 convolutions (DCN v1: learned per-pixel offsets, no modulation mask);
  2. feature aggregation: each block output is projected to dim/4 channels by a 1x1 conv + SELU, upsampled to
     full resolution and concatenated (dim channels per pixel);
  3. score map head (1x1 + three 3x3 convs, sigmoid) and differentiable keypoint detection (DKD: NMS, top-k or
     threshold, then a soft-argmax refinement inside a (2r+1)^2 window);
  4. sparse deformable descriptor head (SDDH): per keypoint, a small conv on the 3x3 patch of the L2-normalised
     aggregated map predicts M sample positions; the features read there (bilinear) are mixed by a 1x1 conv +
     SELU and one learned matrix per position into a dim-dimensional descriptor.

The parameter names are those of the official checkpoints (``aliked-t16/n16/n16rot/n32.pth``), which load with
``strict=True``. Results match the official implementation within float rounding (see test/test_aliked.py).

Where this file is faster than the official code on a CPU (same output):
  * The official code builds the full-resolution concatenated map and L2-normalises all of it, although SDDH
    only ever reads it around the keypoints. We never build it: the descriptor head evaluates the normalised
    map only at the pixels it reads (the 3x3 patches and the four bilinear neighbours of every sample position),
    gathering the four parts there and upsampling the coarse ones on the fly.
  * The score head starts with a 1x1 conv on that concatenated map. A 1x1 conv is linear and so is bilinear
    upsampling, so we apply its four column blocks to each part at that part's own resolution and upsample
    8 channels instead of 32 per part.
  * DKD reads (2r+1)^2 windows only around the selected keypoints instead of unfolding the whole score map,
    and NMS uses separable max pooling (the same maxima: max is associative).
  * The deformable conv is one ``grid_sample`` (all taps at once) + one matmul.

Input: one image as a float tensor [1,3,H,W] in [0,1] (RGB; [1,1,H,W] grey is replicated), any H, W: the image is
padded to a multiple of 32 (replicate, like the official code) and results are in pixels of the input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .weights import find_weights


class Widths(NamedTuple):
    """Channel widths of one ALIKED variant (names as in the paper)."""

    c1: int  # block1 output channels (full resolution)
    c2: int  # block2 (1/2)
    c3: int  # block3 (1/8)
    c4: int  # block4 (1/32)
    dim: int  # aggregated feature and descriptor dimension
    K: int  # SDDH patch size for offset prediction
    M: int  # SDDH number of sample positions per keypoint


VARIANTS: Dict[str, Widths] = {
    "aliked-t16": Widths(8, 16, 32, 64, 64, 3, 16),
    "aliked-n16": Widths(16, 32, 64, 128, 128, 3, 16),
    "aliked-n16rot": Widths(16, 32, 64, 128, 128, 3, 16),  # n16 trained with rotation augmentation
    "aliked-n32": Widths(16, 32, 64, 128, 128, 3, 32),
}

STRIDE = 32  # the encoder pools by 2 * 4 * 4: inputs are padded to a multiple of this
N_LIMIT = 20000  # most keypoints threshold mode ever returns (as the official code)
SOFT_ARGMAX_TEMPERATURE = 0.1  # DKD softmax temperature the checkpoints were trained with

#: Attribute set on the modules of bench_reference's torchvision stand-in (never mistake it for the real one).
_STANDIN_MARK = "__lightglue_ros_standin__"


@dataclass
class AlikedConfig:
    """ALIKED settings. Detection modes (same semantics as the official code):

    * top-k (``detection_threshold <= 0`` and ``max_keypoints > 0``): the ``max_keypoints`` strongest local
      maxima, strongest first (fewer when the image has fewer maxima);
    * threshold (``detection_threshold > 0``): every local maximum above the threshold (the mean score when none
      is), in raster order; above ``max_keypoints`` (or 20000 when ``max_keypoints <= 0``) the strongest are kept,
      strongest first;
    * ``detection_threshold <= 0`` and ``max_keypoints <= 0``: threshold mode at the mean score.
    """

    model_name: str = "aliked-n16"  # aliked-t16 | aliked-n16 | aliked-n16rot | aliked-n32 ("n16" also works)
    max_keypoints: int = 1024
    detection_threshold: float = 0.0
    nms_radius: int = 2  # NMS and soft-argmax window radius (window 2r+1)
    weights: str = ""  # explicit checkpoint file or folder; "" = find_weights() search ($LIGHTGLUE_ROS_WEIGHTS, ...)
    pretrained: bool = True  # False: random weights (for tests of shapes only)
    deform_op: str = "auto"  # "torch" (ours) | "torchvision" (needs a real torchvision) | "auto" (torchvision if any)

    def __post_init__(self):
        name = self.model_name if self.model_name.startswith("aliked-") else f"aliked-{self.model_name}"
        if name not in VARIANTS:
            raise ValueError(f"unknown ALIKED model {self.model_name!r}; one of {', '.join(VARIANTS)}")
        self.model_name = name
        if self.nms_radius < 0:
            raise ValueError(f"nms_radius must be >= 0, got {self.nms_radius}")
        if self.deform_op not in ("auto", "torch", "torchvision"):
            raise ValueError(f"deform_op must be auto, torch or torchvision, got {self.deform_op!r}")


@dataclass
class AlikedFeatures:
    """Features of one image. Empty (N = 0, well-typed) when the image is too small to hold a keypoint."""

    keypoints: torch.Tensor  # [N,2] float32, pixels (x right, y down) of the input image
    descriptors: torch.Tensor  # [N,D] L2-normalised
    scores: torch.Tensor  # [N] detection score in [0,1] at the keypoint
    image_size: Tuple[int, int]  # (width, height) of the input

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


# ---------------------------------------------------------------------------------------------------------------
# Deformable convolution
# ---------------------------------------------------------------------------------------------------------------
def _pair(v) -> Tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                  stride=1, padding=0, dilation=1, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d`` in plain torch (one weight group).

    Tap k = (ki, kj) of output pixel (i, j) reads the input at (i*s - p + ki*d + dy, j*s - p + kj*d + dx) with
    ``dy, dx = offset[:, g*2K + 2k], offset[:, g*2K + 2k + 1]`` (offset group g, K taps), bilinearly with zeros
    outside, times ``mask[:, g*K + k]`` if given. All taps are sampled by one grid_sample into an im2col matrix
    [C*K, L] that one matmul turns into the output.
    """
    b, c, h, w = x.shape
    cout, cin, kh, kw = weight.shape
    if cin != c:
        raise ValueError("deform_conv2d: grouped weights are not supported")
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    ho, wo = offset.shape[-2:]
    taps = kh * kw
    groups = offset.shape[1] // (2 * taps)  # offset groups share one offset field per channel slice
    dev, dt = x.device, x.dtype
    ky = torch.arange(kh, device=dev, dtype=dt).repeat_interleave(kw) * dh
    kx = torch.arange(kw, device=dev, dtype=dt).repeat(kh) * dw
    base_y = (torch.arange(ho, device=dev, dtype=dt) * sh - ph)[None, :, None] + ky[:, None, None]  # [K,ho,1]
    base_x = (torch.arange(wo, device=dev, dtype=dt) * sw - pw)[None, None, :] + kx[:, None, None]  # [K,1,wo]
    off = offset.reshape(b * groups, taps, 2, ho, wo)
    # Pixel -> grid_sample coordinates with align_corners=False ((2p + 1) / size - 1): exact for size 1 too,
    # and grid_sample's zero padding is torchvision's rule (outside neighbours read 0).
    gx = (2 * (base_x + off[:, :, 1]) + 1) / w - 1
    gy = (2 * (base_y + off[:, :, 0]) + 1) / h - 1
    grid = torch.stack((gx, gy), -1).reshape(b * groups, taps * ho, wo, 2)
    cols = F.grid_sample(x.reshape(b * groups, c // groups, h, w), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)  # [b*G, C/G, K*ho, wo]
    cols = cols.reshape(b, c, taps, ho * wo)
    if mask is not None:
        cols = cols * mask.reshape(b, groups, 1, taps, ho * wo).expand(b, groups, c // groups, taps, ho * wo) \
            .reshape(b, c, taps, ho * wo)
    out = weight.reshape(cout, c * taps) @ cols.reshape(b, c * taps, ho * wo)  # [b, cout, L]
    if bias is not None:
        out = out + bias[None, :, None]
    return out.reshape(b, cout, ho, wo)


_TORCHVISION_DCN = None  # resolved once: torchvision.ops.deform_conv2d or False


def torchvision_deform_conv2d():
    """The real ``torchvision.ops.deform_conv2d``, or None when torchvision does not import here."""
    global _TORCHVISION_DCN
    if _TORCHVISION_DCN is None:
        try:
            import torchvision.ops

            ok = not getattr(torchvision.ops, _STANDIN_MARK, False)
            _TORCHVISION_DCN = torchvision.ops.deform_conv2d if ok else False
        except Exception:  # ImportError, or a CUDA-only wheel failing to load on a CPU torch
            _TORCHVISION_DCN = False
    return _TORCHVISION_DCN or None


class DeformableConv2d(nn.Module):
    """3x3 deformable conv (DCN v1): a plain conv predicts (dy, dx) per tap and pixel, the taps read there."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.padding = padding
        self.offset_conv = nn.Conv2d(cin, 2 * kernel_size * kernel_size, kernel_size, padding=padding, bias=True)
        self.regular_conv = nn.Conv2d(cin, cout, kernel_size, padding=padding, bias=False)  # holds the weights only
        self.use_torchvision = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Offsets are bounded by a quarter of the map size, as in training.
        max_offset = max(x.shape[-2:]) / 4.0
        offset = self.offset_conv(x).clamp(-max_offset, max_offset)
        op = torchvision_deform_conv2d() if self.use_torchvision else deform_conv2d
        return op(x, offset, self.regular_conv.weight, None, padding=self.padding)


# ---------------------------------------------------------------------------------------------------------------
# Feature encoder
# ---------------------------------------------------------------------------------------------------------------
def _conv(cin: int, cout: int, deformable: bool) -> nn.Module:
    if deformable:
        return DeformableConv2d(cin, cout)
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


class ConvBlock(nn.Module):
    """First encoder block (full resolution): two 3x3 conv + BN + SELU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, cout, False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv(cout, cout, False), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.selu(self.bn1(self.conv1(x)))
        return F.selu(self.bn2(self.conv2(x)))


class ResBlock(nn.Module):
    """Residual encoder block: two (deformable) 3x3 conv + BN, a 1x1 conv (with bias) on the shortcut, SELU."""

    def __init__(self, cin: int, cout: int, deformable: bool):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, cout, deformable), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv(cout, cout, deformable), nn.BatchNorm2d(cout)
        self.downsample = nn.Conv2d(cin, cout, 1)  # channel change on the shortcut (the name is the checkpoint's)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.selu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.selu(out + self.downsample(x))


# ---------------------------------------------------------------------------------------------------------------
# Sampling helpers (channels-last rows, integer or bilinear reads)
# ---------------------------------------------------------------------------------------------------------------
def _rows(x: torch.Tensor) -> torch.Tensor:
    """[C,H,W] -> [H*W, C]: one contiguous row per pixel, so a pixel read is one row copy."""
    return x.permute(1, 2, 0).reshape(-1, x.shape[0])


def _upsampled_at(rows: torch.Tensor, hs: int, ws: int, hf: int, wf: int,
                  y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Value at full-res integer pixels (y, x) of a map [hs, ws] (given as rows) bilinearly upsampled to
    [hf, wf] with align_corners=True, without building the upsampled map. Same arithmetic as torch's kernel:
    source = dst * (in - 1) / (out - 1), neighbours clamped to the map."""
    def src(dst, n_in, n_out):
        scale = torch.tensor((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0, dtype=rows.dtype, device=rows.device)
        s = dst.to(rows.dtype) * scale
        i0 = s.long()  # s >= 0: truncation is floor
        lam = s - i0.to(rows.dtype)
        return i0, torch.clamp(i0 + 1, max=n_in - 1), lam

    y0, y1, ly = src(y, hs, hf)
    x0, x1, lx = src(x, ws, wf)
    ly, lx = ly[:, None], lx[:, None]
    top = (1 - lx) * rows[y0 * ws + x0] + lx * rows[y0 * ws + x1]
    bottom = (1 - lx) * rows[y1 * ws + x0] + lx * rows[y1 * ws + x1]
    return (1 - ly) * top + ly * bottom


class _Corners(NamedTuple):
    """The four integer neighbours of float positions, with bilinear weights (zero for a neighbour outside)."""

    y: torch.Tensor  # [4, S] long (clamped into the map)
    x: torch.Tensor  # [4, S] long
    w: torch.Tensor  # [4, S] float, 0 where the neighbour is outside the map
    inside: torch.Tensor  # [4, S] bool


def _bilinear_corners(py: torch.Tensor, px: torch.Tensor, h: int, w: int) -> _Corners:
    """grid_sample(bilinear, zeros) neighbours: outside neighbours contribute nothing."""
    y0, x0 = torch.floor(py), torch.floor(px)
    ly, lx = py - y0, px - x0
    y0, x0 = y0.long(), x0.long()
    ys = torch.stack((y0, y0, y0 + 1, y0 + 1))
    xs = torch.stack((x0, x0 + 1, x0, x0 + 1))
    ws = torch.stack(((1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx))
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    return _Corners(ys.clamp(0, h - 1), xs.clamp(0, w - 1), ws * inside, inside)


# ---------------------------------------------------------------------------------------------------------------
# Feature aggregation, evaluated sparsely
# ---------------------------------------------------------------------------------------------------------------
class SparseFeatureMap:
    """The L2-normalised aggregated map ``normalize(cat(f1, up2(f2), up8(f3), up32(f4)))`` of the unpadded
    image, evaluated only at the pixels asked for.

    Building it densely costs dim x H x W floats written, upsampled and normalised, of which SDDH reads well
    under a fifth (1024 keypoints x (9 patch pixels + 4 neighbours x M positions)).
    """

    def __init__(self, parts: List[torch.Tensor], pad_top: int, pad_left: int, h: int, w: int):
        self.parts = [(_rows(p[0]), p.shape[-2], p.shape[-1]) for p in parts]  # [C,h_k,w_k] -> rows
        self.hf, self.wf = parts[0].shape[-2:]  # padded full resolution
        self.pad_top, self.pad_left = pad_top, pad_left
        self.h, self.w = h, w  # unpadded size: the map the official code normalises and samples

    def at(self, iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
        """Normalised features [P, dim] at integer pixels (iy, ix) [P] of the unpadded image (inside it)."""
        y, x = iy + self.pad_top, ix + self.pad_left
        rows1, _, w1 = self.parts[0]
        feats = [rows1[y * w1 + x]]
        for rows, hs, ws in self.parts[1:]:
            feats.append(_upsampled_at(rows, hs, ws, self.hf, self.wf, y, x))
        return F.normalize(torch.cat(feats, 1), p=2.0, dim=1)

    def table(self, iy: torch.Tensor, ix: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features of the distinct pixels among (iy, ix) [any shape] and, for each input pixel, its row.

        Neighbouring keypoints read many of the same pixels; each is computed once. The table ends with a zero
        row for callers that need one (index ``len(table) - 1``)."""
        lin = (iy * self.w + ix).reshape(-1)
        uniq, inverse = torch.unique(lin, return_inverse=True)
        feats = self.at(torch.div(uniq, self.w, rounding_mode="floor"), uniq % self.w)
        feats = torch.cat([feats, feats.new_zeros(1, feats.shape[1])])
        return feats, inverse.reshape(iy.shape)


# ---------------------------------------------------------------------------------------------------------------
# Differentiable keypoint detection (inference)
# ---------------------------------------------------------------------------------------------------------------
def _max_pool(x: torch.Tensor, r: int) -> torch.Tensor:
    """(2r+1)^2 max pooling, stride 1, as two 1-D passes (max is associative: identical to the 2-D pool)."""
    k = 2 * r + 1
    x = F.max_pool2d(x, (1, k), stride=1, padding=(0, r))
    return F.max_pool2d(x, (k, 1), stride=1, padding=(r, 0))


def simple_nms(scores: torch.Tensor, r: int) -> torch.Tensor:
    """Scores of local maxima in a (2r+1)^2 window, 0 elsewhere; two rounds recover maxima next to suppressed
    areas (the SuperPoint/ALIKED NMS). scores: [1,1,H,W]."""
    zeros = torch.zeros_like(scores)
    max_mask = scores == _max_pool(scores, r)
    for _ in range(2):
        supp_mask = _max_pool(max_mask.float(), r) > 0
        supp_scores = torch.where(supp_mask, zeros, scores)
        new_max_mask = supp_scores == _max_pool(supp_scores, r)
        max_mask = max_mask | (new_max_mask & ~supp_mask)
    return torch.where(max_mask, scores, zeros)


def _select(nms: torch.Tensor, scores: torch.Tensor, cfg: AlikedConfig) -> torch.Tensor:
    """Flat indices of the detected keypoints in the [h*w] score map (the official DKD modes)."""
    flat = nms.reshape(-1)
    if cfg.detection_threshold <= 0 and cfg.max_keypoints > 0:  # top-k
        k = min(cfg.max_keypoints, flat.numel())
        vals, idx = torch.topk(flat, k)
        return idx[vals > 0]  # fewer true maxima than k: keep only those (never non-maxima at score 0)
    limit = cfg.max_keypoints if cfg.max_keypoints > 0 else N_LIMIT
    mask = flat > cfg.detection_threshold if cfg.detection_threshold > 0 else None
    if mask is None or not bool(mask.any()):
        mask = flat > scores.mean()  # nothing above the threshold: fall back to the mean score
    idx = mask.nonzero()[:, 0]  # raster order
    if len(idx) > limit:
        idx = idx[torch.sort(scores.reshape(-1)[idx], descending=True)[1][:limit]]
    return idx


def detect_keypoints(score_map: torch.Tensor, cfg: AlikedConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """DKD at inference: NMS, selection, then soft-argmax refinement in the (2r+1)^2 window of each keypoint.

    score_map: [1,1,h,w] of the unpadded image. Returns keypoints [N,2] (x, y) pixels and their scores [N]
    (score map read bilinearly at the refined position).
    """
    r = cfg.nms_radius
    h, w = score_map.shape[-2:]
    nms = simple_nms(score_map, r)
    if r > 0:  # windows must fit in the image: no maxima on the border
        nms[..., :r, :] = 0
        nms[..., -r:, :] = 0
        nms[..., :, :r] = 0
        nms[..., :, -r:] = 0
    idx = _select(nms, score_map, cfg)
    cy, cx = torch.div(idx, w, rounding_mode="floor"), idx % w

    # Window values around each keypoint only (the official code unfolds the whole map).
    d = torch.arange(-r, r + 1, device=idx.device)
    wy = (cy[:, None] + d.repeat_interleave(2 * r + 1)[None]).clamp(0, h - 1)  # row-major window
    wx = (cx[:, None] + d.repeat(2 * r + 1)[None]).clamp(0, w - 1)
    flat = score_map.reshape(-1)
    patch = flat[wy * w + wx]  # [N, (2r+1)^2]
    # Soft-argmax with the training temperature; subtracting the max keeps exp() in range.
    e = ((patch - patch.max(dim=1, keepdim=True).values) / SOFT_ARGMAX_TEMPERATURE).exp()
    grid = torch.stack((d.repeat(2 * r + 1), d.repeat_interleave(2 * r + 1)), 1).to(e)  # (dx, dy) per tap
    residual = e @ grid / e.sum(dim=1, keepdim=True)
    kpts = torch.stack((cx, cy), 1).to(e) + residual

    # Score at the refined position: bilinear read (keypoints lie inside [0, w-1] x [0, h-1]).
    c = _bilinear_corners(kpts[:, 1], kpts[:, 0], h, w)
    kscores = (flat[c.y * w + c.x] * c.w).sum(0)
    return kpts, kscores


# ---------------------------------------------------------------------------------------------------------------
# Sparse deformable descriptor head
# ---------------------------------------------------------------------------------------------------------------
class SDDH(nn.Module):
    """Sparse deformable descriptor head: M learned sample positions per keypoint, one weight matrix each."""

    def __init__(self, dim: int, kernel_size: int = 3, n_pos: int = 16):
        super().__init__()
        self.kernel_size, self.n_pos = kernel_size, n_pos
        # Offsets from the KxK patch at the keypoint: conv KxK (valid) -> SELU -> 1x1. Indices 0 and 2 are the
        # checkpoint's names (nn.Sequential with the SELU at 1).
        self.offset_conv = nn.Sequential(
            nn.Conv2d(dim, 2 * n_pos, kernel_size, bias=True), nn.SELU(), nn.Conv2d(2 * n_pos, 2 * n_pos, 1, bias=True)
        )
        self.sf_conv = nn.Conv2d(dim, dim, 1, bias=False)  # mixes each sampled feature
        self.agg_weights = nn.Parameter(torch.rand(n_pos, dim, dim))  # position p's [dim_in, dim_out] matrix

    def patch_pixels(self, kpts: torch.Tensor, h: int, w: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Integer pixels [N, K*K] (row-major) of the KxK patch at each keypoint, kept inside the image the way
        the official code does (its corner is clamped to [0, size - 1 - K])."""
        k = self.kernel_size
        base = kpts.long()  # truncation, as the official code
        corner = (base.to(kpts.dtype) - k / 2 + 1).long()
        cx = corner[:, 0].clamp(min=0, max=w - 1 - k)
        cy = corner[:, 1].clamp(min=0, max=h - 1 - k)
        d = torch.arange(k, device=kpts.device)
        py = cy[:, None] + d.repeat_interleave(k)[None]
        px = cx[:, None] + d.repeat(k)[None]
        return py, px

    def forward(self, fmap: SparseFeatureMap, kpts: torch.Tensor) -> torch.Tensor:
        """Descriptors [N, dim] for keypoints [N, 2] (x, y pixels of the unpadded image)."""
        h, w = fmap.h, fmap.w
        n, m, k = kpts.shape[0], self.n_pos, self.kernel_size
        conv1, conv2 = self.offset_conv[0], self.offset_conv[2]
        dim = conv1.in_channels

        # 1. Offsets from the patch at the keypoint (a KxK valid conv on a KxK patch = one matmul).
        py, px = self.patch_pixels(kpts, h, w)
        table, rows = fmap.table(py, px)
        patch = table[rows].reshape(n, k * k * dim)  # [N, (ky, kx, c)]
        w1 = conv1.weight.permute(0, 2, 3, 1).reshape(2 * m, k * k * dim)
        off = F.selu(F.linear(patch, w1, conv1.bias))
        off = F.linear(off, conv2.weight.reshape(2 * m, 2 * m), conv2.bias)
        max_offset = max(h, w) / 4.0
        off = off.clamp(-max_offset, max_offset)  # [N, 2M]: M x-offsets then M y-offsets

        # 2. Bilinear reads (zeros outside) of the normalised map at keypoint + offset.
        sx = kpts[:, 0:1] + off[:, :m]
        sy = kpts[:, 1:2] + off[:, m:]
        c = _bilinear_corners(sy.reshape(-1), sx.reshape(-1), h, w)
        table, rows = fmap.table(c.y, c.x)
        rows = torch.where(c.inside, rows, len(table) - 1)  # the zero row
        feats = (table[rows] * c.w[..., None]).sum(0)  # [N*M, dim]

        # 3. Per-position mixing and aggregation: sum_p W_p^T selu(S x_p), as one matmul over (p, c).
        feats = F.selu(F.linear(feats, self.sf_conv.weight.reshape(dim, dim)))
        desc = feats.reshape(n, m * dim) @ self.agg_weights.reshape(m * dim, -1)
        return F.normalize(desc, p=2.0, dim=1)


# ---------------------------------------------------------------------------------------------------------------
# ALIKED
# ---------------------------------------------------------------------------------------------------------------
def _padding(h: int, w: int) -> Tuple[int, int, int, int]:
    """(left, right, top, bottom) replicate padding to a multiple of STRIDE, split as the official code."""
    ph, pw = (-h) % STRIDE, (-w) % STRIDE
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


class ALIKED(nn.Module):
    """ALIKED extractor. ``extract(image)`` returns `AlikedFeatures` for one image.

    Images smaller than ``min_size`` pixels on a side cannot hold a keypoint (the NMS border and the SDDH patch
    need that much) and give empty features; an empty, non-finite-typed or wrongly shaped input raises ValueError.
    """

    def __init__(self, config: Optional[AlikedConfig] = None):
        super().__init__()
        self.conf = conf = config or AlikedConfig()
        c1, c2, c3, c4, dim, k, m = VARIANTS[conf.model_name]
        if c4 != dim:
            raise ValueError("ALIKED variants have c4 == dim")
        # Feature encoder: plain convs at full and half resolution, deformable ones on the coarse levels.
        self.block1 = ConvBlock(3, c1)
        self.block2 = ResBlock(c1, c2, deformable=False)
        self.block3 = ResBlock(c2, c3, deformable=True)
        self.block4 = ResBlock(c3, c4, deformable=True)
        # Feature aggregation: each level -> dim/4 channels.
        self.conv1 = nn.Conv2d(c1, dim // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(c2, dim // 4, 1, bias=False)
        self.conv3 = nn.Conv2d(c3, dim // 4, 1, bias=False)
        self.conv4 = nn.Conv2d(c4, dim // 4, 1, bias=False)
        # Score map head (indices 0, 2, 4, 6 are the checkpoint's names; SELU between).
        self.score_head = nn.Sequential(
            nn.Conv2d(dim, 8, 1, bias=False), nn.SELU(),
            nn.Conv2d(8, 4, 3, padding=1, bias=False), nn.SELU(),
            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.SELU(),
            nn.Conv2d(4, 1, 3, padding=1, bias=False),
        )
        self.desc_head = SDDH(dim, k, m)
        self.min_size = max(2 * conf.nms_radius + 1, k + 1)

        if conf.pretrained:
            path = find_weights(f"{conf.model_name}.pth", conf.weights)
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.load_state_dict(state, strict=True)
        self.set_deform_op(conf.deform_op)
        self.eval()  # BatchNorm must use its running statistics

    def set_deform_op(self, which: str) -> None:
        """Choose the deformable conv: "torch" (ours), "torchvision" (error when absent) or "auto"."""
        if which not in ("auto", "torch", "torchvision"):
            raise ValueError(f"deform_op must be auto, torch or torchvision, got {which!r}")
        tv = torchvision_deform_conv2d() is not None if which != "torch" else False
        if which == "torchvision" and not tv:
            raise ValueError("deform_op='torchvision' but torchvision does not import here; use 'torch'")
        for mod in self.modules():
            if isinstance(mod, DeformableConv2d):
                mod.use_torchvision = tv

    @property
    def deform_op(self) -> str:
        return "torchvision" if self.block3.conv1.use_torchvision else "torch"

    # -----------------------------------------------------------------------------------------------------------
    def encode(self, image: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Padded image [1,3,Hp,Wp] -> aggregated parts [f1 (1), f2 (1/2), f3 (1/8), f4 (1/32)] (dim/4 channels
        each) and the score map [1,1,Hp,Wp] (logits through the sigmoid)."""
        x1 = self.block1(image)
        x2 = self.block2(F.avg_pool2d(x1, 2))
        x3 = self.block3(F.avg_pool2d(x2, 4))
        x4 = self.block4(F.avg_pool2d(x3, 4))
        parts = [F.selu(conv(x)) for conv, x in zip((self.conv1, self.conv2, self.conv3, self.conv4), (x1, x2, x3, x4))]

        # Score head's first 1x1 conv, applied per part before upsampling (both are linear): upsample 8 channels
        # per coarse level instead of building the dim-channel full-resolution map.
        q = parts[0].shape[1]
        w0 = self.score_head[0].weight
        s = F.conv2d(parts[0], w0[:, :q])
        for i, part in enumerate(parts[1:], start=1):
            low = F.conv2d(part, w0[:, i * q:(i + 1) * q])
            s = s + F.interpolate(low, size=s.shape[-2:], mode="bilinear", align_corners=True)
        for layer in list(self.score_head)[1:]:
            s = layer(s)
        return parts, torch.sigmoid(s)

    def forward(self, image: torch.Tensor) -> AlikedFeatures:
        return self.extract(image)

    @torch.inference_mode()
    def extract(self, image: torch.Tensor) -> AlikedFeatures:
        """Features of one image [1,3,H,W] (or [3,H,W]; one channel is replicated), float in [0,1], RGB."""
        image = self._check(image)
        h, w = image.shape[-2:]
        if min(h, w) < self.min_size:
            return self._empty(w, h, image.device, image.dtype)
        left, right, top, bottom = _padding(h, w)
        padded = F.pad(image, (left, right, top, bottom), mode="replicate") if right or bottom else image
        parts, score_map = self.encode(padded)
        score_map = score_map[..., top:top + h, left:left + w]

        kpts, scores = detect_keypoints(score_map, self.conf)
        fmap = SparseFeatureMap(parts, top, left, h, w)
        desc = self.desc_head(fmap, self._patch_positions(kpts, w, h))
        return AlikedFeatures(kpts.float(), desc, scores, (int(w), int(h)))

    def extract_numpy(self, image: np.ndarray) -> AlikedFeatures:
        """Features of a numpy image: HxW grey or HxWx3 RGB, uint8 (or uint16, or float in [0,1])."""
        return self.extract(image_to_tensor(image, self._device()))

    # -----------------------------------------------------------------------------------------------------------
    @staticmethod
    def _patch_positions(kpts: torch.Tensor, w: int, h: int) -> torch.Tensor:
        """Keypoints as SDDH sees them. The official code passes them through [-1, 1] coordinates and back
        before truncating them to pick the 3x3 patch; the same float round trip here makes a keypoint a hair
        from an integer pick the same patch (a different patch would change its descriptor entirely)."""
        wh = torch.tensor([w - 1, h - 1], device=kpts.device, dtype=kpts.dtype)
        return ((kpts / wh * 2 - 1) / 2 + 0.5) * wh

    def _device(self) -> torch.device:
        return self.score_head[0].weight.device

    def _check(self, image: torch.Tensor) -> torch.Tensor:
        if not isinstance(image, torch.Tensor):
            raise ValueError(f"expected a torch.Tensor image, got {type(image).__name__} (see extract_numpy)")
        if image.dim() == 3:
            image = image[None]
        if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
            raise ValueError(f"expected one image [1,3,H,W] or [1,1,H,W], got shape {tuple(image.shape)}")
        if image.shape[-1] == 0 or image.shape[-2] == 0:
            raise ValueError(f"empty image (shape {tuple(image.shape)})")
        if not image.is_floating_point():
            raise ValueError(f"expected a float image in [0,1], got {image.dtype}")
        if image.shape[1] == 1:
            image = image.expand(1, 3, *image.shape[-2:])
        weight = self.score_head[0].weight
        return image.to(device=weight.device, dtype=weight.dtype)

    def _empty(self, w: int, h: int, device, dtype) -> AlikedFeatures:
        dim = self.desc_head.sf_conv.weight.shape[0]
        return AlikedFeatures(torch.zeros(0, 2, device=device), torch.zeros(0, dim, device=device, dtype=dtype),
                              torch.zeros(0, device=device, dtype=dtype), (int(w), int(h)))


def image_to_tensor(image: np.ndarray, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    """HxW / HxWx1 / HxWx3 (RGB) numpy image, uint8, uint16 or float in [0,1] -> [1,C,H,W] float32 in [0,1]."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {img.shape}")
    if img.size == 0:
        raise ValueError(f"empty image (shape {img.shape})")
    if img.dtype == np.uint8:
        full_scale = 255.0
    elif img.dtype == np.uint16:
        full_scale = 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        full_scale = 1.0
    else:
        raise ValueError(f"unsupported image dtype {img.dtype} (uint8, uint16 or float in [0,1])")
    t = torch.from_numpy(np.ascontiguousarray(img)).to(device)
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    return t.float().div_(full_scale)  # a division, like the reference's callers (bit-identical input)
