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

Where this file is faster than the official code on a CPU (same output within float rounding):
  * The official code builds the full-resolution concatenated map and L2-normalises all of it, although SDDH
    only ever reads it around the keypoints. We never build it: the descriptor head evaluates the normalised
    map only at the pixels it reads (the 3x3 patches and the four bilinear neighbours of every sample position),
    computing the full-resolution part there from block1's output and upsampling the coarse parts on the fly.
  * The score head starts with a 1x1 conv on that concatenated map. A 1x1 conv is linear and so is bilinear
    upsampling, so its column blocks are applied to each coarse part at the part's own resolution (8 channels
    upsampled instead of 32), and the full-resolution part goes through ``selu(x1 W1^T) W0^T`` in chunks,
    so its 32-channel full-resolution map is never written out whole.
  * BatchNorm is folded into the preceding conv (eval mode), and the network runs channels-last (much faster
    thin convs and pooling on CPU).
  * NMS max pooling is done with separable window maxima (the same maxima, a tenth of the time of max_pool2d),
    and DKD reads (2r+1)^2 windows only around the selected keypoints instead of unfolding the whole score map.
  * The deformable conv is one ``grid_sample`` (all taps at once) + one matmul.

Input: one image as a float tensor [1,3,H,W] in [0,1] (RGB; [1,1,H,W] grey is replicated), any H, W: the image is
padded to a multiple of 32 (replicate, like the official code) and results are in pixels of the input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lightglue_ros.core.image import check_tensor_image, image_to_tensor
from lightglue_ros.features.weights import find_weights


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
    """ALIKED settings.

    Detection modes (same semantics as the official code):

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
    scores: torch.Tensor  # [N] detection score in [0,1] at the keypoint (NaN for keypoints given to extract)
    image_size: Tuple[int, int]  # (width, height) of the input

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


# ---------------------------------------------------------------------------------------------------------------
# Deformable convolution
# ---------------------------------------------------------------------------------------------------------------
def _pair(v) -> Tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def deform_conv2d(input: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,  # noqa: A002 (torchvision's name)
                  bias: Optional[torch.Tensor] = None, stride=1, padding=0, dilation=1,
                  mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d`` in plain torch, same arguments (one weight group).

    Tap k = (ki, kj) of output pixel (i, j) reads the input at (i*s - p + ki*d + dy, j*s - p + kj*d + dx) with
    ``dy, dx = offset[:, g*2K + 2k], offset[:, g*2K + 2k + 1]`` (offset group g, K taps), bilinearly with zeros
    outside, times ``mask[:, g*K + k]`` if given. All taps are sampled by one grid_sample into an im2col matrix
    [C*K, L] that one matmul turns into the output.
    """
    x = input
    b, c, h, w = x.shape
    cout, cin, kh, kw = weight.shape
    if cin != c:
        raise ValueError("deform_conv2d: grouped weights are not supported")
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    ho, wo = offset.shape[-2:]
    taps = kh * kw
    groups = offset.shape[1] // (2 * taps)  # offset groups share one offset field per channel slice
    # Sampling positions in at least fp32 (half precision cannot address a pixel of a 2048-wide map).
    dev, dt = x.device, torch.promote_types(x.dtype, torch.float32)
    ky = torch.arange(kh, device=dev, dtype=dt).repeat_interleave(kw) * dh
    kx = torch.arange(kw, device=dev, dtype=dt).repeat(kh) * dw
    base_y = (torch.arange(ho, device=dev, dtype=dt) * sh - ph)[None, :, None] + ky[:, None, None]  # [K,ho,1]
    base_x = (torch.arange(wo, device=dev, dtype=dt) * sw - pw)[None, None, :] + kx[:, None, None]  # [K,1,wo]
    off = offset.reshape(b * groups, taps, 2, ho, wo).to(dt)
    # Pixel -> grid_sample coordinates with align_corners=False ((2p + 1) / size - 1): exact for size 1 too,
    # and grid_sample's zero padding is torchvision's rule (outside neighbours read 0).
    gx = (2 * (base_x + off[:, :, 1]) + 1) / w - 1
    gy = (2 * (base_y + off[:, :, 0]) + 1) / h - 1
    grid = torch.stack((gx, gy), -1).reshape(b * groups, taps * ho, wo, 2)
    cols = F.grid_sample(x.reshape(b * groups, c // groups, h, w).to(dt), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=False)  # [b*G, C/G, K*ho, wo]
    cols = cols.reshape(b, c, taps, ho * wo).to(weight.dtype)
    if mask is not None:
        cols = cols * mask.reshape(b, groups, 1, taps, ho * wo).expand(b, groups, c // groups, taps, ho * wo) \
            .reshape(b, c, taps, ho * wo)
    # [L, C*K] @ [C*K, cout]: pixel rows out, i.e. a channels-last result like the encoder's other convs.
    out = cols.reshape(b, c * taps, ho * wo).transpose(1, 2) @ weight.reshape(cout, c * taps).t()
    if bias is not None:
        out = out + bias
    return out.reshape(b, ho, wo, cout).permute(0, 3, 1, 2)


_TORCHVISION_DCN = None  # resolved once: torchvision.ops.deform_conv2d or False


def torchvision_deform_conv2d():
    """Return the real ``torchvision.ops.deform_conv2d``, or None when torchvision does not import here."""
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

    def forward(self, x: torch.Tensor, weight: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``weight``/``bias`` replace the regular conv's (the encoder passes them with BatchNorm folded in)."""
        # Offsets are bounded by a quarter of the map size, as in training.
        max_offset = max(x.shape[-2:]) / 4.0
        offset = self.offset_conv(x).clamp_(-max_offset, max_offset)
        op = torchvision_deform_conv2d() if self.use_torchvision else deform_conv2d
        weight = self.regular_conv.weight if weight is None else weight
        return op(x, offset, weight, bias, padding=self.padding)


# ---------------------------------------------------------------------------------------------------------------
# Feature encoder
# ---------------------------------------------------------------------------------------------------------------
def _conv(cin: int, cout: int, deformable: bool) -> nn.Module:
    if deformable:
        return DeformableConv2d(cin, cout)
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


def _version_key(tensors) -> Optional[tuple]:
    """Identity of the current values of some parameters (storage + in-place version), or None if untracked."""
    try:
        return tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)
    except RuntimeError:  # parameters created under inference_mode carry no version counter
        return None


def _cached(module: nn.Module, tensors, build):
    """``build()``, recomputed only when one of ``tensors`` changed (new storage, dtype or in-place write)."""
    key = _version_key(tensors)
    hit = module.__dict__.get("_cache")
    if key is None or hit is None or hit[0] != key:
        hit = (key, build())
        module.__dict__["_cache"] = hit
    return hit[1]


class _ConvBNBlock(nn.Module):
    """conv1/bn1 and conv2/bn2 (checkpoint names).

    In eval mode each BN is folded into its conv: a conv without bias followed by a fixed affine map is one conv
    with scaled weights and a bias, one pass instead of two.
    """

    def _bn_tensors(self):
        return [t for bn in (self.bn1, self.bn2) for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]

    def _weights(self, conv: nn.Module) -> torch.Tensor:
        return conv.regular_conv.weight if isinstance(conv, DeformableConv2d) else conv.weight

    def folded(self) -> Tuple[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]:
        def fold(conv, bn):
            scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
            return self._weights(conv) * scale[:, None, None, None], bn.bias - bn.running_mean * scale

        tensors = [self._weights(self.conv1), self._weights(self.conv2)] + self._bn_tensors()
        return _cached(self, tensors, lambda: (fold(self.conv1, self.bn1), fold(self.conv2, self.bn2)))

    def conv_bn(self, x: torch.Tensor, i: int) -> torch.Tensor:
        conv, bn = (self.conv1, self.bn1) if i == 1 else (self.conv2, self.bn2)
        if self.training:  # batch statistics: no folding
            return bn(conv(x))
        w, b = self.folded()[i - 1]
        if isinstance(conv, DeformableConv2d):
            return conv(x, w, b)
        return F.conv2d(x, w, b, padding=conv.padding)


class ConvBlock(_ConvBNBlock):
    """First encoder block (full resolution): two 3x3 conv + BN + SELU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, cout, False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv(cout, cout, False), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.selu(self.conv_bn(x, 1), inplace=True)
        return F.selu(self.conv_bn(x, 2), inplace=True)


class ResBlock(_ConvBNBlock):
    """Residual encoder block: two (deformable) 3x3 conv + BN, a 1x1 conv (with bias) on the shortcut, SELU."""

    def __init__(self, cin: int, cout: int, deformable: bool):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, cout, deformable), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv(cout, cout, deformable), nn.BatchNorm2d(cout)
        self.downsample = nn.Conv2d(cin, cout, 1)  # channel change on the shortcut (the name is the checkpoint's)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.selu(self.conv_bn(x, 1), inplace=True)
        out = self.conv_bn(out, 2) + self.downsample(x)
        return F.selu(out, inplace=True)


# ---------------------------------------------------------------------------------------------------------------
# Feature aggregation, evaluated sparsely
# ---------------------------------------------------------------------------------------------------------------
def _rows(x: torch.Tensor) -> torch.Tensor:
    """[1,C,H,W] -> [H*W, C], one row per pixel (a view for a channels-last tensor)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def pointwise_mlp(rows: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, chunk: int = 131072) -> torch.Tensor:
    """``selu(rows @ w1^T) @ w2^T`` ([P, a] -> [P, c]) in a few chunks of rows on CPU.

    The wider hidden layer is consumed while it is still in cache instead of making a full-resolution round trip
    through memory. (Few chunks, not many small ones: each op is a parallel region, and on a busy machine each
    region can wait for a time slice.)
    """
    if rows.device.type != "cpu":
        return F.selu(rows @ w1.t(), inplace=True) @ w2.t()
    w1t, w2t = w1.t().to(rows.dtype), w2.t().to(rows.dtype)
    out = rows.new_empty(rows.shape[0], w2.shape[0])
    for i in range(0, rows.shape[0], chunk):
        out[i:i + chunk] = F.selu(rows[i:i + chunk] @ w1t, inplace=True) @ w2t
    return out


class _Corners(NamedTuple):
    """The four integer neighbours of float positions, with bilinear weights (zero for a neighbour outside)."""

    y: torch.Tensor  # [4, S] long (clamped into the map)
    x: torch.Tensor  # [4, S] long
    w: torch.Tensor  # [4, S] float, 0 where the neighbour is outside the map


def _bilinear_corners(py: torch.Tensor, px: torch.Tensor, h: int, w: int) -> _Corners:
    """grid_sample(bilinear, zeros) neighbours of positions [S]: outside neighbours contribute nothing."""
    y0, x0 = torch.floor(py), torch.floor(px)
    ly, lx = py - y0, px - x0
    y0, x0 = y0.long(), x0.long()
    ys = torch.stack((y0, y0, y0 + 1, y0 + 1))
    xs = torch.stack((x0, x0 + 1, x0, x0 + 1))
    ws = torch.stack(((1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx))
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    return _Corners(ys.clamp(0, h - 1), xs.clamp(0, w - 1), ws * inside)


class SparseFeatureMap:
    """The L2-normalised aggregated map of the unpadded image, evaluated only at the pixels SDDH reads.

    The map is ``normalize(cat(f1, up2(f2), up8(f3), up32(f4)))``.

    Built densely, that map is dim x H x W floats written, upsampled and normalised (a third of the official
    code's CPU time), of which SDDH reads about 1024 x (9 + 4 x M) pixels. Here f1 = selu(conv1(x1)) is computed
    at just those pixels from block1's output x1, and each coarse part is upsampled there: bilinear upsampling
    (align_corners=True) of a pixel is a weighted sum of four rows of the coarse map, which ``embedding_bag``
    computes in one fused gather, rows in and rows out (no layout change). Features are rows, [P, channels].
    """

    def __init__(self, x1: torch.Tensor, conv1_weight: torch.Tensor, coarse: List[torch.Tensor],
                 pad_top: int, pad_left: int, h: int, w: int):
        self.x1 = _rows(x1)  # [Hp*Wp, c1]
        self.w1t = conv1_weight.reshape(conv1_weight.shape[0], -1).t()  # [c1, dim/4]
        self.coarse = [_rows(part) for part in coarse]  # [h_k*w_k, dim/4]
        self.hp, self.wp = x1.shape[-2:]  # padded full resolution
        self.pad_top, self.pad_left = pad_top, pad_left
        self.h, self.w = h, w  # unpadded size: the map the official code normalises and samples

        # upsample(align_corners=True) reads source y (h_k - 1) / (H - 1) for full-resolution pixel y; one
        # column per coarse part, so all parts are handled by the same few ops.
        def column(values, dtype):
            return torch.tensor(values, dtype=dtype, device=x1.device)[:, None]

        sizes = [part.shape[-2:] for part in coarse]
        self.scale_y = column([(hk - 1) / (self.hp - 1) for hk, _ in sizes], torch.float32)
        self.scale_x = column([(wk - 1) / (self.wp - 1) for _, wk in sizes], torch.float32)
        self.last_y = column([hk - 1 for hk, _ in sizes], torch.long)
        self.last_x = column([wk - 1 for _, wk in sizes], torch.long)
        self.width = column([wk for _, wk in sizes], torch.long)

    def _coarse_taps(self, y: torch.Tensor, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Rows and weights of the four source pixels that bilinear upsampling blends at each pixel.

        Rows [parts, P, 4] and weights [parts, P, 4] for full-resolution pixels (y, x) [P] (padded coordinates),
        for every coarse part at once.
        """
        sy = y.to(torch.float32)[None] * self.scale_y  # float32 source coordinates, like torch's kernel
        sx = x.to(torch.float32)[None] * self.scale_x
        y0, x0 = sy.long(), sx.long()  # >= 0: truncation is floor
        ly, lx = sy - y0, sx - x0
        r0 = y0 * self.width
        r1 = torch.minimum(y0 + 1, self.last_y) * self.width
        x1 = torch.minimum(x0 + 1, self.last_x)
        rows = torch.stack((r0 + x0, r0 + x1, r1 + x0, r1 + x1), -1)
        hy, hx = 1 - ly, 1 - lx
        weights = torch.stack((hy * hx, hy * lx, ly * hx, ly * lx), -1)
        return rows, weights

    def parts(self, iy: torch.Tensor, ix: torch.Tensor) -> List[torch.Tensor]:
        """Unnormalised [f1, up(f2), up(f3), up(f4)] at integer pixels (iy, ix) [P] of the unpadded image.

        Each part is [P, dim/4].
        """
        y, x = iy + self.pad_top, ix + self.pad_left
        out = [F.selu(self.x1.index_select(0, y * self.wp + x) @ self.w1t, inplace=True)]
        rows, weights = self._coarse_taps(y, x)
        for k, table in enumerate(self.coarse):
            out.append(F.embedding_bag(rows[k], table, per_sample_weights=weights[k].to(table.dtype), mode="sum"))
        return out

    def at(self, iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
        """Normalised features [P, dim] at integer pixels [P] inside the unpadded image."""
        return F.normalize(torch.cat(self.parts(iy, ix), 1), p=2.0, dim=1)

    def sample(self, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
        """Bilinear reads [S, dim] of the normalised map at float pixels (py, px) [S], zeros outside the image.

        These are what ``grid_sample(align_corners=True, padding_mode="zeros")`` reads from the dense map.
        """
        n = py.shape[0]
        c = _bilinear_corners(py, px, self.h, self.w)
        parts = self.parts(c.y.reshape(-1), c.x.reshape(-1))  # each [4S, dim/4], corner-major
        norm = torch.stack([(p * p).sum(1) for p in parts]).sum(0).sqrt_().clamp_min_(1e-12)
        # Normalising a corner and weighting it are both scalings: fold 1 / |f| into the bilinear weight, then
        # sum each sample's four corners (a "bag" of four rows).
        weights = (c.w.reshape(-1) / norm).reshape(4, n).t().contiguous().to(parts[0].dtype)  # [S, 4]
        bags = torch.arange(4 * n, device=py.device).reshape(4, n).t().contiguous()  # sample i: rows i + k n
        return torch.cat([F.embedding_bag(bags, p, per_sample_weights=weights, mode="sum") for p in parts], 1)


# ---------------------------------------------------------------------------------------------------------------
# Differentiable keypoint detection (inference)
# ---------------------------------------------------------------------------------------------------------------
def _window_reduce(x: torch.Tensor, length: int, dim: int, op) -> torch.Tensor:
    """``op``-reduction (max / or) over every window of ``length`` consecutive entries along ``dim``.

    n + length - 1 entries in, n out. Windows double in length per step (1, 2, 4, ...), and two overlapping
    power-of-two windows cover any length: log2(length) + 1 full passes instead of length - 1.
    """
    n = x.shape[dim] - length + 1
    span = 1
    while 2 * span <= length:
        x = op(x.narrow(dim, 0, x.shape[dim] - span), x.narrow(dim, span, x.shape[dim] - span))
        span *= 2
    if span < length:
        x = op(x.narrow(dim, 0, n), x.narrow(dim, length - span, n))
    return x.narrow(dim, 0, n)


def _max_pool(x: torch.Tensor, r: int) -> torch.Tensor:
    """(2r+1)^2 max pooling, stride 1, of a [H, W] map (-inf outside, like max_pool2d).

    Computed separably with window maxima: the same values, a fraction of max_pool2d's time on CPU (which also
    computes indices).
    """
    xp = F.pad(x[None], (r, r, r, r), value=float("-inf"))[0]
    return _window_reduce(_window_reduce(xp, 2 * r + 1, 1, torch.maximum), 2 * r + 1, 0, torch.maximum)


def _dilate(mask: torch.Tensor, r: int) -> torch.Tensor:
    """Boolean (2r+1)^2 dilation of a [H, W] mask (max pooling of a 0/1 map)."""
    mp = F.pad(mask[None], (r, r, r, r))[0]
    return _window_reduce(_window_reduce(mp, 2 * r + 1, 1, torch.logical_or), 2 * r + 1, 0, torch.logical_or)


def simple_nms(scores: torch.Tensor, r: int) -> torch.Tensor:
    """Scores [H, W] of local maxima in a (2r+1)^2 window, 0 elsewhere (the SuperPoint/ALIKED NMS).

    Two more rounds recover maxima next to suppressed areas.
    """
    zeros = torch.zeros_like(scores)
    max_mask = scores == _max_pool(scores, r)
    for _ in range(2):
        supp_mask = _dilate(max_mask, r)
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

    score_map: [h, w] of the unpadded image. Returns keypoints [N,2] (x, y) pixels and their scores [N]
    (score map read bilinearly at the refined position).
    """
    r = cfg.nms_radius
    h, w = score_map.shape
    nms = simple_nms(score_map, r)
    if r > 0:  # windows must fit in the image: no maxima on the border
        nms[:r] = 0
        nms[-r:] = 0
        nms[:, :r] = 0
        nms[:, -r:] = 0
    idx = _select(nms, score_map, cfg)
    cy, cx = torch.div(idx, w, rounding_mode="floor"), idx % w

    # Window values around each keypoint only (the official code unfolds the whole map).
    d = torch.arange(-r, r + 1, device=idx.device)
    dy, dx = d.repeat_interleave(2 * r + 1), d.repeat(2 * r + 1)  # row-major window
    flat = score_map.reshape(-1)
    patch = flat[(cy[:, None] + dy).clamp(0, h - 1) * w + (cx[:, None] + dx).clamp(0, w - 1)]  # [N, (2r+1)^2]
    # Soft-argmax with the training temperature; subtracting the max keeps exp() in range.
    e = ((patch - patch.max(dim=1, keepdim=True).values) / SOFT_ARGMAX_TEMPERATURE).exp()
    residual = e @ torch.stack((dx, dy), 1).to(e) / e.sum(dim=1, keepdim=True)
    kpts = torch.stack((cx, cy), 1).to(e) + residual

    # Score at the refined position: bilinear read (keypoints lie inside [0, w-1] x [0, h-1]).
    c = _bilinear_corners(kpts[:, 1], kpts[:, 0], h, w)
    kscores = (flat[c.y * w + c.x] * c.w).sum(0)
    return kpts, kscores


def clamp_keypoints(keypoints: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """Given keypoints [N,2] (x, y) as float32, clamped into [0, w-1] x [0, h-1]."""
    kpts = keypoints.to(torch.float32).reshape(-1, 2).clone()
    kpts[:, 0].clamp_(0, w - 1)
    kpts[:, 1].clamp_(0, h - 1)
    return kpts


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
        """Integer pixels [N, K*K] (row-major) of the KxK patch at each keypoint, kept inside the image.

        The patch stays inside the way the official code keeps it: its corner is clamped to [0, size - 1 - K].
        """
        k = self.kernel_size
        corner = (kpts.long().to(kpts.dtype) - k / 2 + 1).long()  # truncations, as the official code
        cx = corner[:, 0].clamp(min=0, max=w - 1 - k)
        cy = corner[:, 1].clamp(min=0, max=h - 1 - k)
        d = torch.arange(k, device=kpts.device)
        return cy[:, None] + d.repeat_interleave(k)[None], cx[:, None] + d.repeat(k)[None]

    def _offset_weight(self) -> torch.Tensor:
        """Return the KxK offset conv as a matrix over patch rows ordered (ky, kx, channel)."""
        w = self.offset_conv[0].weight
        return _cached(self, [w], lambda: w.permute(0, 2, 3, 1).reshape(w.shape[0], -1).contiguous())

    def forward(self, fmap: SparseFeatureMap, kpts: torch.Tensor) -> torch.Tensor:
        """Descriptors [N, dim] for keypoints [N, 2] (x, y pixels of the unpadded image, as SDDH sees them)."""
        h, w = fmap.h, fmap.w
        n, m = kpts.shape[0], self.n_pos
        dim = self.sf_conv.weight.shape[0]
        if n == 0:
            return kpts.new_zeros(0, dim)
        conv2 = self.offset_conv[2]

        # 1. Offsets from the patch at the keypoint (a KxK valid conv on a KxK patch is one matmul).
        py, px = self.patch_pixels(kpts, h, w)
        patch = fmap.at(py.reshape(-1), px.reshape(-1)).reshape(n, -1)  # [N, (ky, kx, c)]
        off = F.selu(F.linear(patch, self._offset_weight(), self.offset_conv[0].bias), inplace=True)
        off = F.linear(off, conv2.weight.reshape(2 * m, 2 * m), conv2.bias)
        max_offset = max(h, w) / 4.0
        off = off.clamp_(-max_offset, max_offset)  # [N, 2M]: M x-offsets then M y-offsets

        # 2. Bilinear reads (zeros outside) of the normalised map at keypoint + offset, order (keypoint, position).
        sx = kpts[:, 0:1] + off[:, :m]
        sy = kpts[:, 1:2] + off[:, m:]
        feats = fmap.sample(sy.reshape(-1), sx.reshape(-1))  # [N*M, dim]

        # 3. Per-position mixing and aggregation: sum_p A_p^T selu(S x_p), one matmul over (position, channel).
        feats = F.selu(F.linear(feats, self.sf_conv.weight.reshape(dim, dim)), inplace=True)
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

    Bad input: an empty image, a batch of several, a wrong channel count or an integer tensor raise ValueError
    (with the reason). An image smaller than ``min_size`` pixels on a side (too small for one NMS window and
    one SDDH patch) is valid input with no keypoints: empty, well-typed features.
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
            nn.Conv2d(dim, 8, 1, bias=False), nn.SELU(inplace=True),
            nn.Conv2d(8, 4, 3, padding=1, bias=False), nn.SELU(inplace=True),
            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.SELU(inplace=True),
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

    @property
    def descriptor_dim(self) -> int:
        return self.desc_head.sf_conv.weight.shape[0]

    # -----------------------------------------------------------------------------------------------------------
    def encode(self, image: torch.Tensor, with_scores: bool = True
               ) -> Tuple[torch.Tensor, List[torch.Tensor], Optional[torch.Tensor]]:
        """Encode a padded image [1,3,Hp,Wp]: block1's output, the coarse aggregated parts and the score map.

        Returns block1's output x1 [1,c1,Hp,Wp], the coarse aggregated parts [f2 (1/2), f3 (1/8), f4 (1/32)]
        (dim/4 channels each) and the score map [Hp, Wp] (None without ``with_scores``: the score head is about
        half of the encoder's time at 640x480 on a CPU).
        """
        x = image.contiguous(memory_format=torch.channels_last)
        x1 = self.block1(x)
        x2 = self.block2(F.avg_pool2d(x1, 2))
        x3 = self.block3(F.avg_pool2d(x2, 4))
        x4 = self.block4(F.avg_pool2d(x3, 4))
        coarse = [F.selu(conv(xk), inplace=True) for conv, xk in ((self.conv2, x2), (self.conv3, x3), (self.conv4, x4))]
        if not with_scores:
            return x1, coarse, None

        # Score head's first 1x1 conv on cat(f1, up(f2), up(f3), up(f4)), split by its column blocks. f1 part:
        # selu(x1 W1^T) W0^T per pixel, chunked; coarse parts: project first, then upsample (both linear).
        hp, wp = x1.shape[-2:]
        q = self.conv1.weight.shape[0]
        w0 = self.score_head[0].weight.reshape(8, -1)
        s = pointwise_mlp(_rows(x1), self.conv1.weight.reshape(q, -1), w0[:, :q])
        s = s.reshape(1, hp, wp, 8).permute(0, 3, 1, 2)  # channels-last view
        for i, part in enumerate(coarse, start=1):
            low = F.conv2d(part, w0[:, i * q:(i + 1) * q, None, None]).contiguous(memory_format=torch.channels_last)
            s = s + F.interpolate(low, size=(hp, wp), mode="bilinear", align_corners=True)
        for layer in list(self.score_head)[1:]:
            s = layer(s)
        return x1, coarse, torch.sigmoid_(s)[0, 0]

    def forward(self, image: torch.Tensor) -> AlikedFeatures:
        return self.extract(image)

    @torch.inference_mode()
    def extract(self, image: torch.Tensor, keypoints: Optional[torch.Tensor] = None) -> AlikedFeatures:
        """Features of one image [1,3,H,W] (or [3,H,W]; one channel is replicated), float in [0,1], RGB.

        ``keypoints`` [N,2] (x, y pixels) replaces ALIKED's own detection: descriptors are sampled there (SDDH
        takes any position), points outside the image are clamped onto it, and the score head is skipped (the
        scores are NaN).
        """
        image = self._check(image)
        h, w = image.shape[-2:]
        if min(h, w) < self.min_size:
            return self._empty(w, h, image.device, image.dtype)
        left, right, top, bottom = _padding(h, w)
        padded = F.pad(image, (left, right, top, bottom), mode="replicate") if right or bottom else image
        x1, coarse, score_map = self.encode(padded, with_scores=keypoints is None)
        # Keypoint positions always in fp32, also under fp16 autocast (fp16 steps by 1 px above 1024).
        with torch.autocast(x1.device.type, enabled=False):
            if keypoints is None:
                kpts, scores = detect_keypoints(score_map[top:top + h, left:left + w].float(), self.conf)
            else:
                kpts = clamp_keypoints(keypoints.to(x1.device), w, h)
                scores = torch.full((len(kpts),), float("nan"), device=x1.device)
        fmap = SparseFeatureMap(x1, self.conv1.weight, coarse, top, left, h, w)
        desc = self.desc_head(fmap, self._patch_positions(kpts, w, h))
        return AlikedFeatures(kpts.float(), desc, scores, (int(w), int(h)))

    def extract_numpy(self, image: np.ndarray) -> AlikedFeatures:
        """Features of a numpy image: HxW grey or HxWx3 RGB, uint8 (or uint16, or float in [0,1])."""
        return self.extract(image_to_tensor(image, self._device()))

    # -----------------------------------------------------------------------------------------------------------
    @staticmethod
    def _patch_positions(kpts: torch.Tensor, w: int, h: int) -> torch.Tensor:
        """Keypoints as SDDH sees them.

        The official code passes them through [-1, 1] coordinates and back before truncating them to pick the
        3x3 patch; the same float round trip here makes a keypoint a hair from an integer pick the same patch
        (a different patch would change its descriptor entirely).
        """
        wh = torch.tensor([w - 1, h - 1], device=kpts.device, dtype=kpts.dtype)
        return ((kpts / wh * 2 - 1) / 2 + 0.5) * wh

    def _device(self) -> torch.device:
        return self.score_head[0].weight.device

    def _check(self, image: torch.Tensor) -> torch.Tensor:
        image = check_tensor_image(image)
        if image.shape[1] == 1:
            image = image.expand(1, 3, *image.shape[-2:])
        weight = self.score_head[0].weight
        return image.to(device=weight.device, dtype=weight.dtype)

    def _empty(self, w: int, h: int, device, dtype) -> AlikedFeatures:
        return AlikedFeatures(torch.zeros(0, 2, device=device),
                              torch.zeros(0, self.descriptor_dim, device=device, dtype=dtype),
                              torch.zeros(0, device=device, dtype=dtype), (int(w), int(h)))
