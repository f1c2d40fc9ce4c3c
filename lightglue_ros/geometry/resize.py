"""Frames made smaller before the pipeline (the node's ``max_image_size``), with their intrinsics, depth and mask.

Pixel centres stay pixel centres: a point at pixel u of the original is at (u + 0.5) * s - 0.5 after resizing
by s, and `unscale_points` maps results back to the pixels the camera sent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from lightglue_ros.core.types import Camera


@dataclass
class Resized:
    """A frame after `limit_size`."""

    image: np.ndarray
    camera: Optional[Camera]
    depth: Optional[np.ndarray]
    mask: Optional[np.ndarray]
    scale: float  # resized pixels per original pixel (1.0 = untouched)


def scale_camera(camera: Camera, sx: float, sy: float) -> Camera:
    """Return the same camera seen in an image resized by (sx, sy): pixel centres stay pixel centres."""
    K = np.array(camera.K, np.float64)
    K[0, 0] *= sx
    K[1, 1] *= sy
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return Camera(int(round(camera.width * sx)), int(round(camera.height * sy)), K, np.array(camera.D), camera.model)


def unscale_points(points: np.ndarray, scale: float) -> np.ndarray:
    """Pixels of a frame resized by ``scale`` (see `limit_size`) -> pixels of the original frame."""
    pts = np.asarray(points, np.float32)
    return pts if scale == 1.0 else (pts + 0.5) / np.float32(scale) - 0.5


def limit_size(image: np.ndarray, camera: Optional[Camera], depth: Optional[np.ndarray],
               mask: Optional[np.ndarray], max_side: int) -> Resized:
    """Shrink the frame so its longer side is at most ``max_side`` (0 = no limit), with K, depth and mask."""
    h, w = image.shape[:2]
    if max_side <= 0 or max(h, w) <= max_side:
        return Resized(image, camera, depth, mask, 1.0)
    s = max_side / float(max(h, w))
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    sx, sy = size[0] / w, size[1] / h
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # Depth and masks must not be blended across edges: nearest neighbour keeps valid values only.
    d = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST) if depth is not None else None
    m = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 if mask is not None else None
    cam = scale_camera(camera, sx, sy) if camera is not None else None
    return Resized(small, cam, d, m, s)
