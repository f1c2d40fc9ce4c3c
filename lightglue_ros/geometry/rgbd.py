"""RGB-D: depth images in metres, keypoints lifted to 3-D, and the metric pose from them (P3P LO-RANSAC).

Depth is registered to the raw image: it is read at the raw pixel, the ray comes from the undistorted pixel.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import poselib

from lightglue_ros.core.lie import invert_T, make_T
from lightglue_ros.core.types import Camera
from lightglue_ros.geometry.camera import bearings, poselib_camera, undistort_points
from lightglue_ros.geometry.covariance import pose_covariance
from lightglue_ros.geometry.two_view import (REASON_FEW_INLIERS, REASON_NAN, REASON_NO_PARALLAX, REASON_NO_POSE,
                                             PoseConfig, RelativePose, ransac_options, rotation_compensated_flow)

REASON_FEW_DEPTH = "too few points with valid depth"
REASON_DEPTH_SIZE = "depth wrong size"
REASON_DEPTH_TYPE = "depth not a 2-D array"


class LiftedPoints(NamedTuple):
    """`lift_keypoints` result: camera-frame points, which are valid, and why none are (wrong size, ...)."""

    xyz: np.ndarray  # (N,3) float64, metres, frame of the depth camera; NaN where invalid
    valid: np.ndarray  # (N,) bool
    reason: str = ""


def depth_in_metres(depth) -> Optional[np.ndarray]:
    """Convert depth to HxW float32 metres from float metres or uint16 millimetres (16UC1); None if not a 2-D array."""
    d = np.asarray(depth)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2:
        return None
    if d.dtype == np.uint16 or d.dtype == np.int32 or d.dtype == np.int16:
        return d.astype(np.float32) * np.float32(1e-3)
    return d.astype(np.float32, copy=False)


def check_depth(depth, cam: Camera) -> str:
    """Why ``depth`` cannot be used with ``cam`` ("" when it can)."""
    if depth is None:
        return "no depth"
    d = np.asarray(depth)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2:
        return REASON_DEPTH_TYPE
    if d.shape != (int(cam.height), int(cam.width)):
        return f"{REASON_DEPTH_SIZE} ({d.shape[1]}x{d.shape[0]}, camera {cam.width}x{cam.height})"
    return ""


def lift_keypoints(pts_px, depth, cam: Camera, min_depth: float = 0.1, max_depth: float = 20.0,
                   interpolation: str = "nearest", rel_tolerance: float = 0.05) -> LiftedPoints:
    """Raw-image keypoints + registered depth image -> 3-D points in the camera frame (metres).

    Depth is read at the raw pixel (depth is registered to the raw image); the ray comes from the undistorted
    pixel. Rejected: zero/NaN/out-of-[min_depth, max_depth] depth, pixels outside the image, and (bilinear) any
    point whose 4 neighbours are not all valid or disagree by more than ``rel_tolerance`` (a depth edge: the
    interpolated value would float between foreground and background). A wrong-size depth image gives all
    invalid with a reason.
    """
    pts = np.asarray(pts_px, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    none = LiftedPoints(np.full((n, 3), np.nan), np.zeros(n, bool))
    why = check_depth(depth, cam)
    if why:
        return none._replace(reason=why)
    d = depth_in_metres(depth)
    h, w = d.shape
    finite = np.all(np.isfinite(pts), axis=1)
    safe = np.where(finite[:, None], pts, -1.0)

    def ok(z):
        return np.isfinite(z) & (z >= min_depth) & (z <= max_depth)

    if interpolation == "bilinear":
        x0 = np.floor(safe[:, 0]).astype(np.int64)
        y0 = np.floor(safe[:, 1]).astype(np.int64)
        inside = finite & (x0 >= 0) & (y0 >= 0) & (x0 + 1 < w) & (y0 + 1 < h)
        xc, yc = np.clip(x0, 0, w - 2), np.clip(y0, 0, h - 2)
        zs = np.stack([d[yc, xc], d[yc, xc + 1], d[yc + 1, xc], d[yc + 1, xc + 1]], axis=1).astype(np.float64)
        good = inside & np.all(ok(zs), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = (zs.max(axis=1) - zs.min(axis=1)) / zs.min(axis=1)
        good &= spread <= rel_tolerance
        fx, fy = safe[:, 0] - x0, safe[:, 1] - y0
        z = (zs[:, 0] * (1 - fx) * (1 - fy) + zs[:, 1] * fx * (1 - fy)
             + zs[:, 2] * (1 - fx) * fy + zs[:, 3] * fx * fy)
    elif interpolation == "nearest":
        xi = np.round(safe[:, 0]).astype(np.int64)
        yi = np.round(safe[:, 1]).astype(np.int64)
        inside = finite & (xi >= 0) & (yi >= 0) & (xi < w) & (yi < h)
        z = d[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)].astype(np.float64)
        good = inside & ok(z)
    else:
        return none._replace(reason=f"unknown depth interpolation '{interpolation}'")
    rays = bearings(cam.K, undistort_points(cam, safe))
    xyz = np.where(good[:, None], rays * z[:, None], np.nan)
    return LiftedPoints(xyz, good, "" if good.any() else REASON_FEW_DEPTH)


def metric_pose(xyz_ref, pts_cur, cam: Camera, cfg=None, min_parallax_px: Optional[float] = None,
                pts_ref=None) -> RelativePose:
    """Metric ``T_0_1`` from 3-D points of the reference frame and their undistorted pixels in the current frame.

    P3P LO-RANSAC + refinement (PoseLib ``estimate_absolute_pose``), reprojection threshold
    ``2 * ransac_threshold_px`` (a 2-D point error, where the epipolar threshold is a 1-D distance). Points with
    NaN coordinates are ignored (invalid depth). When ``pts_ref`` (undistorted reference pixels) is given the
    median inlier flow is measured and "no parallax" is reported below ``min_parallax_px`` (default from cfg).
    """
    cfg = PoseConfig.of(cfg)
    X = np.asarray(xyz_ref, dtype=np.float64).reshape(-1, 3)
    p1 = np.asarray(pts_cur, dtype=np.float64).reshape(-1, 2)
    n = len(X)
    if len(p1) != n:
        return RelativePose(False, "point arrays differ in length", metric=True)
    use = np.all(np.isfinite(X), axis=1) & np.all(np.isfinite(p1), axis=1) & (X[:, 2] > 0)
    if use.sum() < max(cfg.min_matches, 4):
        reason = REASON_FEW_DEPTH if np.all(np.isfinite(p1)) else REASON_NAN
        return RelativePose(False, reason, inliers=np.zeros(n, bool), metric=True)
    idx = np.flatnonzero(use)
    try:
        pose, info = poselib.estimate_absolute_pose(
            p1[idx], X[idx], poselib_camera(cam), ransac_options(cfg, "max_reproj_error", 2 * cfg.ransac_threshold_px),
            {})
    except Exception as exc:
        return RelativePose(False, f"{REASON_NO_POSE} ({type(exc).__name__})", inliers=np.zeros(n, bool),
                            metric=True)
    inl = np.zeros(n, bool)
    sub = np.asarray(info.get("inliers", []), dtype=bool)
    if sub.shape == idx.shape:
        inl[idx[sub]] = True
    T_1_0 = make_T(np.asarray(pose.R), np.asarray(pose.t).ravel())
    T_0_1 = invert_T(T_1_0)
    res = RelativePose(False, "", T_0_1[:3, :3], T_0_1[:3, 3], inl, int(inl.sum()), metric=True)
    if res.num_inliers < max(cfg.min_inliers, 4):
        res.reason = REASON_FEW_INLIERS
        return res
    if pts_ref is not None:
        p0 = np.asarray(pts_ref, dtype=np.float64).reshape(-1, 2)
        res.parallax_px = float(np.median(np.linalg.norm(p1[inl] - p0[inl], axis=1)))
        res.trans_parallax_px = float(np.median(
            rotation_compensated_flow(cam.K, cam.K, T_1_0[:3, :3], p0[inl], p1[inl])))
        limit = cfg.min_parallax_px if min_parallax_px is None else min_parallax_px
        if res.parallax_px < limit:
            res.reason = REASON_NO_PARALLAX
            return res
    res.covariance, res.sigma_px = pose_covariance(X[inl], p1[inl], T_0_1, cam.K, cfg.sigma_floor_px)
    res.ok = True
    return res
