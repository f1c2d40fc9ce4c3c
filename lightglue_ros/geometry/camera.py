"""Camera model: CameraInfo-style cameras, their validation, undistortion, rays and projection.

Pixel points are ``(N,2)`` float arrays, x right / y down. Every estimator in `geometry` expects **undistorted**
pixels (run `undistort_points` first): after undistortion the camera is the pinhole ``K`` of the `Camera`.
"""
from __future__ import annotations

import cv2
import numpy as np

from lightglue_ros.core.types import Camera

# Number of distortion coefficients accepted per model. An empty D always means "no distortion" (ROS drivers of
# rectified cameras publish plumb_bob with D=[]).
_COEFF_COUNTS = {
    "none": None,  # any length, all zeros
    "plumb_bob": (4, 5),
    "radtan": (4, 5),
    "rational_polynomial": (8, 12, 14),
    "equidistant": (4,),
    "fisheye": (4,),
}
_FISHEYE = ("equidistant", "fisheye")
# Iterative undistortion: OpenCV's default (5 iterations) leaves pixel-level errors for strong lenses.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)


def camera_from_info(width: int, height: int, K, D=(), model: str = "plumb_bob") -> Camera:
    """Build a `Camera` from CameraInfo-style fields (``K`` row-major 9 values or 3x3, ``D`` any length).

    ``model`` "" is read as "none". Nothing is validated here; call `validate_camera`.
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    D = np.asarray(D, dtype=np.float64).ravel()
    return Camera(int(width), int(height), K, D, (model or "none").strip().lower())


def validate_camera(cam: Camera) -> str:
    """Why ``cam`` cannot be used, or "" when it can."""
    try:
        K = np.asarray(cam.K, dtype=np.float64)
        D = np.asarray(cam.D, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return "intrinsics not numeric"
    if K.shape != (3, 3):
        return f"K has shape {K.shape}, expected 3x3"
    if not np.all(np.isfinite(K)) or not np.all(np.isfinite(D)):
        return "non-finite intrinsics or distortion"
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        return f"focal length must be positive (fx={K[0, 0]:g}, fy={K[1, 1]:g})"
    if not np.allclose(K[2], (0.0, 0.0, 1.0)):
        return "K last row must be 0 0 1"
    if int(cam.width) <= 0 or int(cam.height) <= 0:
        return f"bad image size {cam.width}x{cam.height}"
    model = (cam.model or "none").lower()
    if model not in _COEFF_COUNTS:
        return f"unknown distortion model '{cam.model}'"
    counts = _COEFF_COUNTS[model]
    if counts is None:
        if np.any(D != 0):
            return "distortion model 'none' with non-zero coefficients"
    elif len(D) and len(D) not in counts:
        return f"distortion model '{model}' expects {'/'.join(map(str, counts))} coefficients, got {len(D)}"
    return ""


def has_distortion(cam: Camera) -> bool:
    """Return True when the camera has a non-zero distortion coefficient."""
    D = np.asarray(cam.D, dtype=np.float64).ravel()
    return bool(len(D)) and bool(np.any(D != 0))


def undistort_points(cam: Camera, pts_px) -> np.ndarray:
    """Distorted pixels of the raw image -> undistorted pixels of the pinhole camera ``K`` (float64, (N,2)).

    Uses OpenCV's iterative inversion (``P=K`` keeps the result in pixels). A camera without distortion returns
    the points unchanged (as float64).
    """
    pts = np.asarray(pts_px, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0 or not has_distortion(cam):
        return pts.copy()
    K = np.asarray(cam.K, dtype=np.float64)
    D = np.asarray(cam.D, dtype=np.float64).ravel()
    src = pts.reshape(-1, 1, 2)
    if (cam.model or "").lower() in _FISHEYE:
        out = cv2.fisheye.undistortPoints(src, K, D, R=np.eye(3), P=K, criteria=_UNDISTORT_CRITERIA)
    else:
        out = cv2.undistortPoints(src, K, D, R=np.eye(3), P=K, criteria=_UNDISTORT_CRITERIA)
    return out.reshape(-1, 2).astype(np.float64)


def poselib_camera(cam: Camera) -> dict:
    """Return the pinhole camera in PoseLib's dictionary form (points are undistorted before PoseLib sees them)."""
    return {"model": "PINHOLE", "width": int(cam.width), "height": int(cam.height),
            "params": [cam.fx, cam.fy, cam.cx, cam.cy]}


def bearings(K: np.ndarray, pts_px: np.ndarray) -> np.ndarray:
    """Undistorted pixels -> rays with z = 1 (normalised image coordinates, homogeneous)."""
    pts = np.asarray(pts_px, dtype=np.float64).reshape(-1, 2)
    x = (pts[:, 0] - K[0, 2]) / K[0, 0]
    y = (pts[:, 1] - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=1)


def project(K: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Camera-frame points (N,3) -> pixels (N,2). Points behind the camera give meaningless values; mask first."""
    z = X[:, 2:3]
    z = np.where(np.abs(z) < 1e-12, 1e-12, z)
    uv = X[:, :2] / z
    return np.stack([K[0, 0] * uv[:, 0] + K[0, 2], K[1, 1] * uv[:, 1] + K[1, 2]], axis=1)
