"""XFeat keypoint detector and descriptor in plain PyTorch.

XFeat (Potje, Cadar, Araujo, Martins, Nascimento, "XFeat: Accelerated Features for Lightweight Image Matching",
CVPR 2024) is a CNN built for CPUs: few channels at high resolution, more only where the map is small. Its parts,
in the paper's terms:

  1. backbone: the grey image, instance-normalised, goes through five blocks of basic layers (3x3 conv +
     BatchNorm + ReLU) down to 1/4, 1/8, 1/16 and 1/32 resolution (4 -> 8 -> 24, 64, 64, 128 channels), with a
     cheap shortcut (4x4 average pooling + 1x1 conv) from the image into the 1/4 block;
  2. feature pyramid fusion: the 1/16 and 1/32 maps are upsampled bilinearly to 1/8 and summed with the 1/8 map,
     then two 3x3 layers and a 1x1 conv give the dense 64-D local features F at 1/8 resolution;
  3. descriptor head: F, L2-normalised; a keypoint's descriptor is read from it bicubically and normalised again;
  4. reliability head: 1x1 layers on F give the reliability map R (sigmoid), how likely a descriptor there matches;
  5. keypoint head: a separate branch on the raw pixels of each 8x8 cell (the cell unfolded into 64 channels,
     three 1x1 layers) classifies the cell into one of its 64 pixels or a 65th "no keypoint" bin (SuperPoint's
     scheme); the softmax over the 65 bins, dustbin dropped and folded back, is a full-resolution heatmap K;
  6. sparse keypoints: local maxima of K in a 5x5 window above ``detection_threshold``, scored K * R (K read at the
     pixel, R bilinearly), the ``max_keypoints`` best kept.

The checkpoint also holds the fine-matching MLP of the semi-dense XFeat* mode; it is built so that ``xfeat.pt``
loads with ``strict=True``, and not used by the sparse extractor here.

Sampling convention (the reference implementation's, kept for parity): keypoint positions are normalised to
[-1, 1] by ``size - 1`` but read with ``grid_sample(align_corners=False)``. On the 1/8 maps the difference is a
fraction of a cell; on the full-resolution heatmap a keypoint in the last row or column reads outside (score 0) and
is dropped, as in the reference.

Image size: the network needs a multiple of 32. ``fit="pad"`` (default) pads the normalised image on the right and
bottom (replicating the border, statistics from the real pixels only) and detects only inside the real image, so
keypoints lie on the input's own pixel grid; ``fit="resize"`` resizes to the multiple of 32 below (the reference's
way, bilinear, which stretches the image a little) and scales the keypoints back. ``scale`` < 1 runs the network on
a smaller image (antialiased resize) and maps the keypoints back to input pixels.

Where this file is faster than the reference on a CPU (same output within float rounding): BatchNorm folded into
the convs (eval mode) with channels-last weights; the keypoint head (1x1 layers only) runs as matmuls on rows of
cells, its softmax along contiguous rows; NMS by separable window maxima instead of ``max_pool2d`` (which also
computes indices: a quarter of the reference's time at 640x480); the grey mean and the instance-norm statistics as
plain adds and one dot product (the strided mean and ``var_mean`` took ~2 ms each); the grey conversion before any
resize and no resize when the image already fits; the backbone skipped when the heatmap has no keypoint. Measured
(python -m lightglue_ros.tools.bench_xfeat speed, 1024 keypoints, 2 threads): 17 ms against the reference's 40 ms at
640x480, 27 against 55 ms at 1226x370.

Input: one image as a float tensor [1,3,H,W] or [1,1,H,W] in [0,1], any H, W; results in pixels of the input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lightglue_ros.core.image import check_tensor_image, image_to_tensor

from .aliked import AlikedFeatures, _cached, _max_pool
from .weights import load_checkpoint, load_strict

STRIDE = 32  # five stride-2 stages: inputs are a multiple of this
CELL = 8  # the keypoint head classifies 8x8 cells; F and R are at 1/8 resolution
INSTANCE_NORM_EPS = 1e-5  # nn.InstanceNorm2d's default, as trained
FITS = ("pad", "resize")

#: Features of one image: keypoints [N,2] float pixels of the input, descriptors [N,64] L2-normalised, scores [N]
#: (K * R in [0, 1]), image_size (w, h). The same record as ALIKED's, so callers treat both alike.
XFeatFeatures = AlikedFeatures


@dataclass
class XFeatConfig:
    """XFeat settings (defaults: the reference's sparse extractor, except its 4096 keypoints)."""

    max_keypoints: int = 1024  # the best-scored keypoints kept; <= 0 = every maximum above the threshold
    detection_threshold: float = 0.05  # minimum heatmap value K of a keypoint (the reference's default)
    nms_radius: int = 2  # local maxima in a (2r+1)^2 window (the reference: 5x5)
    fit: str = "pad"  # pad | resize: how an image that is not a multiple of 32 is made one (see the module doc)
    scale: float = 1.0  # run the network on the image resized by this factor (0 < scale <= 1); keypoints mapped back
    weights: str = ""  # explicit checkpoint file or folder; "" = find_weights() search ($LIGHTGLUE_ROS_WEIGHTS, ...)
    pretrained: bool = True  # False: random weights (for tests of shapes only)

    def __post_init__(self):
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if not 0 < self.scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {self.scale}")
        if self.nms_radius < 0:
            raise ValueError(f"nms_radius must be >= 0, got {self.nms_radius}")


# ---------------------------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------------------------
class ConvBNReLU(nn.Module):
    """The paper's basic layer: conv (no bias) + BatchNorm without affine parameters + ReLU.

    In eval mode the BatchNorm is folded into the conv: a conv followed by a fixed affine map is one conv with
    scaled weights and a bias, one pass over the map instead of two. (``layer`` is the checkpoint's name.)
    """

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.layer = nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout, affine=False),
            nn.ReLU(inplace=True),
        )

    def folded(self) -> Tuple[torch.Tensor, torch.Tensor]:
        conv, bn = self.layer[0], self.layer[1]

        def fold():
            scale = torch.rsqrt(bn.running_var + bn.eps)
            return (conv.weight * scale[:, None, None, None]).contiguous(memory_format=torch.channels_last), \
                -bn.running_mean * scale

        return _cached(self, [conv.weight, bn.running_mean, bn.running_var], fold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:  # batch statistics: no folding
            return self.layer(x)
        conv = self.layer[0]
        w, b = self.folded()
        return F.relu_(F.conv2d(x, w, b, stride=conv.stride, padding=conv.padding))

    def pointwise(self, rows: torch.Tensor) -> torch.Tensor:
        """Run the layer as 1x1 on pixel rows [P, cin] -> [P, cout] (one matmul, no layout change)."""
        w, b = self.folded()
        return F.relu_(torch.addmm(b, rows, w.reshape(w.shape[0], -1).t()))


def _layers(*specs) -> nn.Sequential:
    """Build a block of basic layers from (cin, cout, stride) for 3x3 or (cin, cout, "1x1") for a 1x1 layer."""
    out = []
    for cin, cout, kind in specs:
        out.append(ConvBNReLU(cin, cout, 1, 1, 0) if kind == "1x1" else ConvBNReLU(cin, cout, 3, kind, 1))
    return nn.Sequential(*out)


def fine_matcher_mlp() -> nn.Sequential:
    """Build XFeat*'s match refinement MLP (two concatenated descriptors -> 8x8 offset logits).

    Unused in sparse mode; built so that the checkpoint loads strictly. Indices are the checkpoint's names.
    """
    layers, width = [], 128
    for _ in range(4):
        layers += [nn.Linear(width, 512), nn.BatchNorm1d(512, affine=False), nn.ReLU(inplace=True)]
        width = 512
    return nn.Sequential(*layers, nn.Linear(512, 64))


# ---------------------------------------------------------------------------------------------------------------
# Sparse reads at keypoints (the reference's convention, see the module docstring)
# ---------------------------------------------------------------------------------------------------------------
def sample_at(fmap: torch.Tensor, kpts: torch.Tensor, h: int, w: int, mode: str) -> torch.Tensor:
    """Values [N, C] of a map [1, C, h', w'] at keypoints [N, 2] (x, y pixels of an h x w image)."""
    scale = torch.tensor([w - 1, h - 1], device=kpts.device, dtype=torch.float32)
    grid = 2.0 * (kpts.to(torch.float32) / scale) - 1.0
    # Always in fp32, also under bf16/fp16 autocast: a bf16 grid addresses a 640-pixel map to ~1 px only.
    with torch.autocast(fmap.device.type, enabled=False):
        out = F.grid_sample(fmap.float(), grid[None, :, None], mode=mode, align_corners=False)  # [1, C, N, 1]
    return out[0, :, :, 0].t()


# ---------------------------------------------------------------------------------------------------------------
# XFeat
# ---------------------------------------------------------------------------------------------------------------
class XFeat(nn.Module):
    """XFeat sparse extractor. ``extract(image)`` returns `XFeatFeatures` for one image.

    Bad input: an empty image, a batch of several, a wrong channel count or an integer tensor raise ValueError
    (with the reason). An image whose network input would be smaller than one 8x8 cell on a side, or one without
    contrast (constant: no keypoint can be detected there), is valid input with no keypoints: empty, well-typed
    features.
    """

    descriptor_dim = 64

    def __init__(self, config: Optional[XFeatConfig] = None):
        super().__init__()
        self.conf = conf = config or XFeatConfig()
        # Backbone. The shortcut brings the image's own pixels to the 1/4 block (4x4 average + 1x1 conv).
        self.skip1 = nn.Sequential(nn.AvgPool2d(4, stride=4), nn.Conv2d(1, 24, 1))
        self.block1 = _layers((1, 4, 1), (4, 8, 2), (8, 8, 1), (8, 24, 2))  # -> 1/4
        self.block2 = _layers((24, 24, 1), (24, 24, 1))  # 1/4
        self.block3 = _layers((24, 64, 2), (64, 64, 1), (64, 64, "1x1"))  # -> 1/8
        self.block4 = _layers((64, 64, 2), (64, 64, 1), (64, 64, 1))  # -> 1/16
        self.block5 = _layers((64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 64, "1x1"))  # -> 1/32
        # Feature pyramid fusion -> the dense local features F (1/8, 64 channels).
        self.block_fusion = nn.Sequential(*_layers((64, 64, 1), (64, 64, 1)), nn.Conv2d(64, 64, 1))
        # Reliability head R and keypoint head (65 logits per 8x8 cell).
        self.heatmap_head = nn.Sequential(*_layers((64, 64, "1x1"), (64, 64, "1x1")), nn.Conv2d(64, 1, 1),
                                          nn.Sigmoid())
        self.keypoint_head = nn.Sequential(*_layers((64, 64, "1x1"), (64, 64, "1x1"), (64, 64, "1x1")),
                                           nn.Conv2d(64, 65, 1))
        self.fine_matcher = fine_matcher_mlp()

        if conf.pretrained:
            path, state = load_checkpoint("xfeat.pt", conf.weights)
            load_strict(self, state, path, "xfeat.pt")
        self.eval()  # BatchNorm must use its running statistics

    # -----------------------------------------------------------------------------------------------------------
    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the dense features F [1,64,H/8,W/8] of a normalised grey image [1,1,H,W].

        H and W are multiples of 32; F is not yet L2-normalised.
        """
        x1 = self.block1(x)
        x2 = self.block2(x1 + self.skip1(x))
        x3 = self.block3(x2)
        x4 = self.block4(x3)
        x5 = self.block5(x4)
        size = x3.shape[-2:]
        fused = x3 + F.interpolate(x4, size, mode="bilinear") + F.interpolate(x5, size, mode="bilinear")
        return self.block_fusion(fused)

    def heatmap(self, x: torch.Tensor) -> torch.Tensor:
        """Keypoint heatmap K [H, W] of the normalised grey image [1,1,H,W].

        The keypoint head sees each 8x8 cell's 64 pixels as channels (channel 8 i + j = pixel (i, j), the
        reference's unfold), 1x1 layers only: it runs on rows [cells, 64] (matmuls), and the softmax over the
        65 bins is along rows, contiguous.
        """
        h, w = x.shape[-2:]
        hc, wc = h // CELL, w // CELL
        rows = x.reshape(hc, CELL, wc, CELL).permute(0, 2, 1, 3).reshape(hc * wc, CELL * CELL)
        for layer in list(self.keypoint_head)[:-1]:
            rows = layer.pointwise(rows)
        last = self.keypoint_head[-1]
        logits = torch.addmm(last.bias, rows, last.weight.reshape(last.weight.shape[0], -1).t())
        probs = logits.softmax(1)[:, :-1]  # dustbin dropped
        return probs.reshape(hc, wc, CELL, CELL).permute(0, 2, 1, 3).reshape(h, w)

    def forward(self, image: torch.Tensor) -> XFeatFeatures:
        return self.extract(image)

    @torch.inference_mode()
    def extract(self, image: torch.Tensor) -> XFeatFeatures:
        """Features of one image [1,3,H,W] or [1,1,H,W] (or without the batch dimension), float in [0,1].

        Colour is averaged to grey (the network's input). Keypoints are (x, y) pixels of the input image,
        strongest first.
        """
        image = self._check(image)
        h, w = image.shape[-2:]
        x, (hv, wv), (sx, sy) = self._network_input(image)
        if x is None:
            return self._empty(w, h, image.device)
        hp, wp = x.shape[-2:]
        heat = self.heatmap(x)
        kpts = self._detect(heat[:hv, :wv])  # only inside the real image (pad mode)
        if len(kpts) == 0:
            return self._empty(w, h, image.device)
        feats = self.backbone(x)

        # Score = K at the pixel x R read bilinearly (the reference's reads).
        reliability = self.heatmap_head(feats)
        scores = sample_at(heat[None, None], kpts, hp, wp, "nearest")[:, 0] \
            * sample_at(reliability, kpts, hp, wp, "bilinear")[:, 0]
        k = self.conf.max_keypoints
        if 0 < k < len(scores):
            scores, order = torch.topk(scores, k)
        else:
            scores, order = torch.sort(scores, descending=True)
        kpts = kpts[order]
        valid = scores > 0  # the last row/column reads outside the heatmap (score 0): dropped, as the reference
        kpts, scores = kpts[valid], scores[valid]

        # Descriptors: bicubic reads of the L2-normalised dense features, normalised again.
        desc = sample_at(F.normalize(feats, dim=1), kpts, hp, wp, "bicubic")
        desc = F.normalize(desc, dim=1)
        kpts = kpts.to(torch.float32)
        if (sx, sy) != (1.0, 1.0):
            factor = torch.tensor([sx, sy], device=kpts.device, dtype=torch.float32)
            if self.conf.fit == "resize":
                kpts = kpts * factor  # the reference's mapping (parity)
            else:  # pixel centres map to pixel centres: a downscaled pixel i covers input pixels [i s, (i + 1) s)
                kpts = (kpts + 0.5) * factor - 0.5
        return XFeatFeatures(kpts, desc, scores, (int(w), int(h)))

    def extract_numpy(self, image: np.ndarray) -> XFeatFeatures:
        """Features of a numpy image: HxW grey or HxWx3 RGB, uint8 (or uint16, or float in [0,1])."""
        return self.extract(image_to_tensor(image, self._device()))

    # -----------------------------------------------------------------------------------------------------------
    def network_size(self, h: int, w: int) -> Tuple[int, int, int, int]:
        """(hp, wp, hv, wv): the network's input size and the part of it that is the image, for an h x w input."""
        hs, ws = (max(1, round(h * self.conf.scale)), max(1, round(w * self.conf.scale)))
        if self.conf.fit == "resize":
            hp, wp = (hs // STRIDE) * STRIDE, (ws // STRIDE) * STRIDE
            return hp, wp, hp, wp
        return -(-hs // STRIDE) * STRIDE, -(-ws // STRIDE) * STRIDE, hs, ws

    def _network_input(self, image: torch.Tensor):
        """Build the normalised grey network input [1,1,hp,wp].

        Returns it with the size (hv, wv) of its image part and the factors (sx, sy) from its pixels to the
        input's; None when it would be smaller than a cell or has no contrast.
        """
        h, w = image.shape[-2:]
        hp, wp, hv, wv = self.network_size(h, w)
        if min(hv, wv) < CELL:
            return None, (0, 0), (1.0, 1.0)
        # Grey = channel mean, as the reference (explicit adds: a strided mean over 3 channels is slow on CPU).
        # The mean commutes with the (linear) resize: take it first, one channel to resize instead of three.
        grey = image if image.shape[1] == 1 else (image[:, 0:1] + image[:, 1:2] + image[:, 2:3]).div_(3.0)
        if (hv, wv) != (h, w):
            # Downscaling by ``scale`` is antialiased; the reference's small stretch to a multiple of 32 is not.
            grey = F.interpolate(grey, (hv, wv), mode="bilinear", align_corners=False,
                                 antialias=self.conf.scale < 1)
        # Instance normalisation over the image's own pixels (padding must not change the statistics).
        centred = grey - grey.mean()
        flat = centred.reshape(-1)
        var = torch.dot(flat, flat) / flat.numel()
        if not bool(var > 0):
            return None, (0, 0), (1.0, 1.0)
        x = centred.mul_(torch.rsqrt(var + INSTANCE_NORM_EPS))
        if (hp, wp) != (hv, wv):
            x = F.pad(x, (0, wp - wv, 0, hp - hv), mode="replicate")
        return x.contiguous(), (hv, wv), (w / wv, h / hv)

    def _detect(self, heat: torch.Tensor) -> torch.Tensor:
        """Integer (x, y) [N, 2] of the local maxima of the heatmap [h, w] above the threshold (ties kept)."""
        r = self.conf.nms_radius
        peak = heat > self.conf.detection_threshold
        if r > 0:
            peak &= heat == _max_pool(heat, r)
        yx = peak.nonzero()
        return yx.flip(-1)

    def _device(self) -> torch.device:
        return self.skip1[1].weight.device

    def _check(self, image: torch.Tensor) -> torch.Tensor:
        image = check_tensor_image(image)
        weight = self.skip1[1].weight
        return image.to(device=weight.device, dtype=weight.dtype)

    def _empty(self, w: int, h: int, device) -> XFeatFeatures:
        return XFeatFeatures(torch.zeros(0, 2, device=device), torch.zeros(0, self.descriptor_dim, device=device),
                             torch.zeros(0, device=device), (int(w), int(h)))
