"""Camera model, two-view relative pose, RGB-D lifting + PnP, pose covariance.

Conventions (see also `types.py`):

- Pixel points are ``(N,2)`` float arrays, x right / y down. Every estimator here expects **undistorted** pixels
  (run `undistort_points` first): after undistortion the camera is the pinhole ``K`` of the `Camera`.
- ``T_a_b`` (4x4 float64) maps points of frame b into frame a. For a two-view estimate frame 0 is the reference
  (keyframe) and frame 1 the current frame, so ``T_0_1`` is the pose of the current camera in the reference
  camera's frame, i.e. the motion of the camera. `RelativePose.R` / `.t` are the blocks of ``T_0_1``.
- Covariances are 6x6 in ROS order ``x y z roll pitch yaw``: position error of the camera centre and a small
  rotation about the axes of the reference frame (``R' = Exp(dphi) R``), both expressed in frame 0.
- Failures are values, not exceptions: `RelativePose.ok` is False with a short, stable `reason` (the REASON_*
  constants below).

Nothing here is metric unless it says so: `relative_pose` recovers the translation direction only (unit
length); `metric_pose` (from lifted depth) is metric.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import cv2
import numpy as np
import poselib

from lightglue_ros.core.config import param
from lightglue_ros.core.types import Camera

# A "pure rotation" frame reports the essential matrix's rotation instead of the rotation-only fit when the median
# rotation-compensated flow exceeds this many times E's median Sampson error (~2.5 under pure rotation + noise).
ROTATION_FLOW_NOISE_RATIO = 5.0

# Short, stable failure reasons (tests and diagnostics compare against these).
REASON_NAN = "non-finite input"
REASON_FEW_MATCHES = "too few matches"
REASON_FEW_INLIERS = "too few inliers"
REASON_NO_PARALLAX = "no parallax"
REASON_ROTATION = "pure rotation"
REASON_NO_POSE = "no pose"
REASON_FEW_DEPTH = "too few points with valid depth"
REASON_DEPTH_SIZE = "depth wrong size"
REASON_DEPTH_TYPE = "depth not a 2-D array"

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


# --------------------------------------------------------------------------------------------------------------
# Camera model
# --------------------------------------------------------------------------------------------------------------


def camera_from_info(width: int, height: int, K, D=(), model: str = "plumb_bob") -> Camera:
    """A `Camera` from CameraInfo-style fields (``K`` row-major 9 values or 3x3, ``D`` any length).

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


def _poselib_camera(cam: Camera) -> dict:
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


def make_T(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.ravel(t)
    return T


def invert_T(T: np.ndarray) -> np.ndarray:
    R, t = T[:3, :3], T[:3, 3]
    return make_T(R.T, -R.T @ t)


def transform(T: np.ndarray, X: np.ndarray) -> np.ndarray:
    return X @ T[:3, :3].T + T[:3, 3]


# --------------------------------------------------------------------------------------------------------------
# Two-view relative pose (PoseLib LO-RANSAC)
# --------------------------------------------------------------------------------------------------------------


@dataclass
class PoseConfig:
    """Estimator settings. `OdometryConfig` extends it, so an odometry config can be passed instead."""

    # Epipolar (Sampson) error threshold; PnP uses 2x this (2-D point error).
    ransac_threshold_px: float = param(1.0, "RANSAC inlier threshold (px).", lo=0.01, hi=100.0)
    ransac_confidence: float = param(0.9999, "RANSAC confidence.", lo=0.0, hi=1.0)
    ransac_max_iterations: int = param(10000, "RANSAC iteration cap.", lo=1, hi=1000000)
    # PoseLib's default is 1000; dynamic stopping covers the rest.
    ransac_min_iterations: int = param(100, "RANSAC iterations always run (at most ransac_max_iterations).",
                                       lo=1, hi=1000000)
    min_matches: int = param(15, "Fewer matches than this: no pose for the frame.", lo=5, hi=100000)
    min_inliers: int = param(15, "Fewer RANSAC inliers than this: no pose for the frame.", lo=5, hi=100000)
    min_parallax_px: float = param(1.0, "Median inlier flow below this: the camera is static, pose held.",
                                   lo=0.0, hi=1000.0)
    rotation_parallax_px: float = param(0.0, "Rotation-compensated median flow below this: pure rotation "
                                        "(0 = auto: max(min_parallax_px, 2 x ransac_threshold_px)).",
                                        lo=0.0, hi=1000.0)
    sigma_floor_px: float = param(0.1, "The pose covariance never trusts keypoints better than this (px).",
                                  lo=0.0, hi=100.0)

    @staticmethod
    def of(cfg) -> "PoseConfig":
        """Accept a PoseConfig (or an OdometryConfig, which is one) or None (defaults)."""
        return PoseConfig() if cfg is None else cfg

    @property
    def rotation_px(self) -> float:
        # Under pure rotation the rotation-compensated flow is only keypoint noise (~threshold); translation is
        # detectable only above that floor.
        return self.rotation_parallax_px if self.rotation_parallax_px > 0 else max(
            self.min_parallax_px, 2.0 * self.ransac_threshold_px)


@dataclass
class RelativePose:
    """Result of a two-view estimate. ``T_0_1`` maps frame-1 (current) points into frame 0 (reference).

    ``R``/``t`` are the blocks of ``T_0_1``; for `relative_pose` ``|t| = 1`` (direction only), for `metric_pose`
    ``t`` is in metres. On failure ``ok`` is False with ``reason``; ``R`` may still hold a usable rotation
    (pure rotation) and arrays keep their shapes.
    """

    ok: bool
    reason: str = ""
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    num_inliers: int = 0
    parallax_px: float = 0.0  # median inlier flow |p1 - p0| (pixels, undistorted)
    trans_parallax_px: float = 0.0  # median rotation-compensated flow (what translation causes)
    covariance: np.ndarray = field(default_factory=lambda: np.eye(6))
    sigma_px: float = 0.0  # reprojection residual standard deviation used for the covariance
    metric: bool = False

    @property
    def T_0_1(self) -> np.ndarray:
        return make_T(self.R, self.t)

    @property
    def T_1_0(self) -> np.ndarray:
        return invert_T(self.T_0_1)


def _ransac_opt(cfg: PoseConfig, key: str, threshold: float) -> dict:
    return {key: float(threshold), "success_prob": float(cfg.ransac_confidence),
            "max_iterations": int(cfg.ransac_max_iterations),
            "min_iterations": int(min(cfg.ransac_min_iterations, cfg.ransac_max_iterations))}


def _check_points(*arrays) -> str:
    for a in arrays:
        if not np.all(np.isfinite(a)):
            return REASON_NAN
    return ""


def rotation_compensated_flow(K0: np.ndarray, K1: np.ndarray, R_1_0: np.ndarray, p0: np.ndarray,
                              p1: np.ndarray) -> np.ndarray:
    """|p1 - H_inf p0| per point: the flow translation causes (zero for a pure rotation)."""
    return np.linalg.norm(project(K1, bearings(K0, p0) @ R_1_0.T) - p1, axis=1)


def skew(v: np.ndarray) -> np.ndarray:
    """[v]x: the cross-product matrix, skew(a) @ b == np.cross(a, b)."""
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], np.float64)


def sampson_px(K0: np.ndarray, K1: np.ndarray, R_1_0: np.ndarray, t_1_0: np.ndarray, p0: np.ndarray,
               p1: np.ndarray) -> np.ndarray:
    """|Sampson error| per match of the essential matrix [t]x R, in pixels of camera 0's focal length."""
    b0, b1 = bearings(K0, p0), bearings(K1, p1)
    t = np.asarray(t_1_0, np.float64) / max(np.linalg.norm(t_1_0), 1e-12)
    E = skew(t) @ R_1_0
    Eb0, Etb1 = b0 @ E.T, b1 @ E
    den = np.sqrt(Eb0[:, 0] ** 2 + Eb0[:, 1] ** 2 + Etb1[:, 0] ** 2 + Etb1[:, 1] ** 2)
    return np.abs(np.einsum("ij,ij->i", b1, Eb0)) / np.maximum(den, 1e-12) * K0[0, 0]


def rotation_estimate(K0: np.ndarray, K1: np.ndarray, R_rot: np.ndarray, R_1_0: np.ndarray, t_1_0: np.ndarray,
                      p0: np.ndarray, p1: np.ndarray, rot_flow: float) -> np.ndarray:
    """R_1_0 to report for a frame judged a pure rotation: the rotation-only fit, unless the data show translation.

    The rotation-only fit absorbs a small translation into the rotation (1-1.5 deg on a 256x192 frame moving 5 cm),
    while the essential matrix's rotation models it. Under a true pure rotation with keypoint noise sigma, the
    median rotation-compensated flow is ~1.67 sigma (2-D, both points) and the median Sampson error of the
    essential matrix ~0.67 sigma: a ratio ~2.5 (2.4-2.7 measured). Far above that the flow is translation, not
    noise, and E's rotation is the better one; at or near it, E's rotation is the noisier (its free translation
    fits noise: 0.2-0.4 deg against 0.03-0.07 for the rotation-only fit at 0.5 px noise).
    """
    if not len(p0):
        return R_rot
    noise = float(np.median(sampson_px(K0, K1, R_1_0, t_1_0, p0, p1)))
    dR = R_rot @ R_1_0.T
    angle = np.degrees(np.arccos(np.clip((np.trace(dR) - 1.0) / 2.0, -1.0, 1.0)))
    # The angle gate keeps E's twisted-pair solution (180 deg about the baseline) out.
    if rot_flow > ROTATION_FLOW_NOISE_RATIO * noise and angle < 10.0:
        return R_1_0
    return R_rot


def fit_rotation(K0: np.ndarray, K1: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Least-squares rotation R_1_0 with b1 ~ R b0 over unit bearings (Kabsch): the rotation-only model."""
    b0 = bearings(K0, p0)
    b1 = bearings(K1, p1)
    b0 /= np.linalg.norm(b0, axis=1, keepdims=True)
    b1 /= np.linalg.norm(b1, axis=1, keepdims=True)
    U, _, Vt = np.linalg.svd(b1.T @ b0)
    S = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ S @ Vt


def triangulate(K0: np.ndarray, K1: np.ndarray, T_1_0: np.ndarray, p0: np.ndarray, p1: np.ndarray):
    """Midpoint triangulation in frame 0. Returns (X0 (N,3), depth0, depth1); depths <= 0 mean behind a camera.

    Solves ``d0 R b0 + t = d1 b1`` in least squares per point (b = z-normalised rays, so d is the z depth).
    """
    R, t = T_1_0[:3, :3], T_1_0[:3, 3]
    a = bearings(K0, p0) @ R.T  # R b0
    b = bearings(K1, p1)
    aa = np.einsum("ij,ij->i", a, a)
    bb = np.einsum("ij,ij->i", b, b)
    ab = np.einsum("ij,ij->i", a, b)
    at = a @ t
    bt = b @ t
    det = aa * bb - ab * ab
    det = np.where(np.abs(det) < 1e-15, np.nan, det)  # parallel rays: no depth
    d0 = (-at * bb + ab * bt) / det
    d1 = (aa * bt - ab * at) / det
    X0 = bearings(K0, p0) * d0[:, None]
    return X0, d0, d1


def relative_pose(pts0, pts1, cam0: Camera, cam1: Camera, cfg=None) -> RelativePose:
    """Calibrated two-view pose (5-point LO-RANSAC + refinement, PoseLib) from undistorted pixels.

    Returns the unit-translation ``T_0_1``, inliers, parallax and a 6x6 covariance for that unit-scaled pose.
    Failure reasons: non-finite input, too few matches, too few inliers, no parallax (median inlier flow below
    ``min_parallax_px``: the camera did not move detectably), pure rotation (a rotation-only model explains the
    inliers: median rotation-compensated flow below ``rotation_px``; ``R`` is then the rotation-only fit).
    """
    cfg = PoseConfig.of(cfg)
    p0 = np.asarray(pts0, dtype=np.float64).reshape(-1, 2)
    p1 = np.asarray(pts1, dtype=np.float64).reshape(-1, 2)
    n = min(len(p0), len(p1))
    if len(p0) != len(p1):
        return RelativePose(False, "point arrays differ in length")
    if _check_points(p0, p1):
        return RelativePose(False, REASON_NAN, inliers=np.zeros(n, bool))
    if n < max(cfg.min_matches, 5):
        return RelativePose(False, REASON_FEW_MATCHES, inliers=np.zeros(n, bool))
    try:
        pose, info = poselib.estimate_relative_pose(
            p0, p1, _poselib_camera(cam0), _poselib_camera(cam1),
            _ransac_opt(cfg, "max_epipolar_error", cfg.ransac_threshold_px), {})
    except Exception as exc:  # PoseLib raises on degenerate input it cannot normalise
        return RelativePose(False, f"{REASON_NO_POSE} ({type(exc).__name__})", inliers=np.zeros(n, bool))
    inl = np.asarray(info.get("inliers", []), dtype=bool)
    if inl.shape != (n,):
        inl = np.zeros(n, bool)
    n_in = int(inl.sum())
    R_1_0 = np.asarray(pose.R)
    t_1_0 = np.asarray(pose.t, dtype=np.float64).ravel()
    t_norm = np.linalg.norm(t_1_0)
    # The refinement keeps |t| near, not at, 1: renormalise so the direction-only contract holds exactly.
    T_1_0 = make_T(R_1_0, t_1_0 / t_norm if t_norm > 0 else t_1_0)
    T_0_1 = invert_T(T_1_0)
    res = RelativePose(False, "", T_0_1[:3, :3], T_0_1[:3, 3], inl, n_in)
    if n_in < max(cfg.min_inliers, 5):
        res.reason = REASON_FEW_INLIERS
        return res
    K0, K1 = cam0.K, cam1.K
    res.parallax_px = float(np.median(np.linalg.norm(p1[inl] - p0[inl], axis=1)))
    if res.parallax_px < cfg.min_parallax_px:
        res.reason = REASON_NO_PARALLAX
        return res
    # The rotation-only model (infinite homography) is fitted independently of the essential matrix: under pure
    # rotation E is degenerate and its translation is arbitrary, its rotation not always trustworthy.
    R_rot = fit_rotation(K0, K1, p0[inl], p1[inl])
    rot_flow = float(np.median(rotation_compensated_flow(K0, K1, R_rot, p0[inl], p1[inl])))
    res.trans_parallax_px = float(np.median(rotation_compensated_flow(K0, K1, R_1_0, p0[inl], p1[inl])))
    if rot_flow < cfg.rotation_px:
        res.reason = REASON_ROTATION
        res.R, res.t = rotation_estimate(K0, K1, R_rot, R_1_0, t_1_0, p0[inl], p1[inl], rot_flow).T, np.zeros(3)
        res.trans_parallax_px = rot_flow
        return res
    X0, d0, d1 = triangulate(K0, K1, T_1_0, p0[inl], p1[inl])
    front = np.isfinite(d0) & (d0 > 0) & (d1 > 0)
    if front.sum() < max(cfg.min_inliers, 5):
        res.reason = REASON_FEW_INLIERS
        return res
    res.covariance, res.sigma_px = pose_covariance(X0[front], p1[inl][front], T_0_1, K1, cfg.sigma_floor_px)
    res.ok = True
    return res


# --------------------------------------------------------------------------------------------------------------
# RGB-D
# --------------------------------------------------------------------------------------------------------------


class LiftedPoints(NamedTuple):
    """`lift_keypoints` result: camera-frame points, which are valid, and why none are (wrong size, ...)."""

    xyz: np.ndarray  # (N,3) float64, metres, frame of the depth camera; NaN where invalid
    valid: np.ndarray  # (N,) bool
    reason: str = ""


def depth_in_metres(depth) -> Optional[np.ndarray]:
    """HxW float32 metres from float metres or uint16 millimetres (16UC1); None if not a 2-D array."""
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
            p1[idx], X[idx], _poselib_camera(cam), _ransac_opt(cfg, "max_reproj_error", 2 * cfg.ransac_threshold_px),
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


# --------------------------------------------------------------------------------------------------------------
# Covariance
# --------------------------------------------------------------------------------------------------------------


def _so3_exp(phi: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(phi))
    if theta < 1e-12:
        return np.eye(3)
    k = phi / theta
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * Kx + (1 - np.cos(theta)) * Kx @ Kx


def _perturbed_residuals(X0: np.ndarray, p1: np.ndarray, T_0_1: np.ndarray, K: np.ndarray,
                         delta: np.ndarray) -> np.ndarray:
    # Camera centre moved by delta[:3], orientation rotated by delta[3:] about the reference-frame axes.
    R = _so3_exp(delta[3:]) @ T_0_1[:3, :3]
    c = T_0_1[:3, 3] + delta[:3]
    Xc = (X0 - c) @ R  # R^T (X - c) for each row
    return (project(K, Xc) - p1).ravel()


def pose_covariance(X0, pts1, T_0_1: np.ndarray, K: np.ndarray, sigma_floor_px: float = 0.1,
                    step: float = 1e-6) -> tuple[np.ndarray, float]:
    """6x6 covariance (x y z roll pitch yaw, reference frame) of ``T_0_1`` from reprojection residuals.

    Gauss-Newton approximation ``sigma^2 (J^T J)^-1`` with a central-difference Jacobian of the current-image
    reprojection error over the inliers (points ``X0`` held fixed, so it is a lower bound: point uncertainty is
    not propagated). ``sigma^2 = sum r^2 / (2N - 6)``, floored at ``sigma_floor_px`` so exact synthetic data still
    gives a positive-definite matrix. Returns (covariance, sigma_px). More and better-spread inliers shrink it.
    """
    X0 = np.asarray(X0, dtype=np.float64).reshape(-1, 3)
    p1 = np.asarray(pts1, dtype=np.float64).reshape(-1, 2)
    n = len(X0)
    zero = np.zeros(6)
    r0 = _perturbed_residuals(X0, p1, T_0_1, K, zero)
    dof = max(2 * n - 6, 1)
    sigma = float(np.sqrt(np.sum(r0 ** 2) / dof)) if n else float("inf")
    sigma = max(sigma, sigma_floor_px) if np.isfinite(sigma) else 1e3
    J = np.empty((2 * n, 6))
    for k in range(6):
        d = np.zeros(6)
        d[k] = step
        J[:, k] = (_perturbed_residuals(X0, p1, T_0_1, K, d) - _perturbed_residuals(X0, p1, T_0_1, K, -d)) / (2 * step)
    H = J.T @ J
    # A tiny ridge keeps a near-degenerate geometry (few, collinear points) invertible and SPD instead of raising.
    H += np.eye(6) * max(1e-9 * np.trace(H), 1e-12)
    cov = sigma ** 2 * np.linalg.inv(H)
    cov = 0.5 * (cov + cov.T)
    return cov, sigma
