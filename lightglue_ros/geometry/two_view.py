"""Two-view relative pose of calibrated cameras (PoseLib 5-point LO-RANSAC), triangulation, pure-rotation tests.

Conventions (see also `core/types.py`):

- Pixel points are undistorted (`geometry.camera.undistort_points`), ``(N,2)``, x right / y down.
- ``T_a_b`` (4x4 float64) maps points of frame b into frame a. For a two-view estimate frame 0 is the reference
  (keyframe) and frame 1 the current frame, so ``T_0_1`` is the pose of the current camera in the reference
  camera's frame, i.e. the motion of the camera. `RelativePose.R` / `.t` are the blocks of ``T_0_1``.
- Covariances are 6x6 in ROS order ``x y z roll pitch yaw``: position error of the camera centre and a small
  rotation about the axes of the reference frame (``R' = Exp(dphi) R``), both expressed in frame 0.
- Failures are values, not exceptions: `RelativePose.ok` is False with a short, stable `reason` (the REASON_*
  constants below).

Nothing here is metric: `relative_pose` recovers the translation direction only (unit length); the metric pose
from lifted depth is `geometry.rgbd.metric_pose`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import poselib

from lightglue_ros.core.config import param
from lightglue_ros.core.lie import invert_T, make_T, skew
from lightglue_ros.core.types import Camera
from lightglue_ros.geometry.camera import bearings, poselib_camera, project
from lightglue_ros.geometry.covariance import pose_covariance

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


def ransac_options(cfg: PoseConfig, key: str, threshold: float) -> dict:
    """Build PoseLib RANSAC options from the estimator settings (``key`` names the threshold PoseLib expects)."""
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
            p0, p1, poselib_camera(cam0), poselib_camera(cam1),
            ransac_options(cfg, "max_epipolar_error", cfg.ransac_threshold_px), {})
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


def two_view_config(od):
    """Return the PoseLib settings of the odometry (threshold, confidence, iterations), without its refusals.

    The odometry declines to report a pose when the parallax is small or a rotation-only model explains the
    matches (a policy for chaining poses). The pose AUC of the papers scores whatever the estimator returns,
    so those checks are switched off here; PoseLib itself still needs 5 inliers.
    """
    cfg = PoseConfig.of(od)
    return dataclasses.replace(cfg, min_matches=5, min_inliers=5, min_parallax_px=0.0, rotation_parallax_px=1e-9)
