"""Windowed bundle adjustment of monocular keyframes: Ceres through pycolmap (no ROS).

`adjust` jointly refines the poses of the last N keyframes and the points tracked through them, with a robust loss,
and returns the marginal covariance of the newest pose. Conventions are the package's (`core/types.py`, `geometry`):
poses are 4x4 float64 ``T_world_cam``, camera optical frame, undistorted pixels of one pinhole ``K``.

Gauge. Reprojection errors do not change under a similarity transform of the whole window, so 7 degrees of freedom
must be fixed. The **oldest keyframe's pose is held constant**, and the **scale is the input's distance between the
two oldest keyframe centres**. In the solve the scale is held by COLMAP's two-camera gauge: one coordinate of the
second keyframe's translation (``t_cam1_cam0`` along its dominant axis) is constant, a hard constraint on the
parameterisation. That keeps the distance only to second order in the correction of the baseline direction, so
the solution is then scaled about the oldest centre to the input distance exactly: the cost cannot see that scale,
so this is the same optimum, in the gauge the caller asked for. Why not a prior on the distance: a tight prior on a
nonlinear function of the poses stalls Levenberg-Marquardt (measured with GTSAM's RangeFactor at sigma 1e-6: no
step decreased the cost at any damping), and a loose one leaks gauge freedom into the covariance. When a keyframe
other than the oldest is held (it sees too few points), the two held poses fix the scale and nothing is rescaled.

Covariance. ``covariance`` is the 6x6 marginal of the newest pose, ordered and defined like every pose covariance of
this package (`geometry.pose_covariance`, ``nav_msgs/Odometry``): position of the camera centre x y z, then a small
rotation about the world axes (``R' = Exp(dphi) R``), both **in the world frame of the input poses**, metres of the
window's scale and radians. It is conditioned on the gauge: it is the uncertainty *relative to the oldest keyframe*,
with the scale of the first baseline (compose it with that keyframe's own covariance for an absolute one). For a
2-keyframe window the newest pose is the scale gauge, so its variance along the baseline is zero. It is the
Gauss-Newton inverse (Schur complement over the points, COLMAP's estimator) times sigma^2, sigma the RMS of the
inlier reprojection errors floored at ``sigma_floor_px``; with a robust loss the Jacobian carries its weights.

Measured (``python -m lightglue_ros.tools.bench_bundle --runs 7 --seeds 3``: 10 keyframes, 1000 tracks seen 2-10 times,
~3950 observations, 0.7 px noise, 5 % outliers of 5-50 px, Cauchy 2 px, 5 iterations, one thread, medians, on the
shared 2-core machine so rough), per adjustment in ms:

    solver          build  solve  covariance  total   pose error after (mean centre / rotation)
    Ceres/pycolmap    9.5   12.7     7.5      29-31   4.0-9.5 mm / 0.027-0.038 deg
    GTSAM 4.3         7.5   46-65    78-86   137-158  same to 0.5 mm / 0.001 deg; Marginals fails on 2 of 6 windows

GTSAM (LevenbergMarquardt over GenericProjectionFactorCal3_S2, robust noise model) costs ~11 ms per iteration
whatever the ordering (COLAMD, METIS, points first), Ceres' dense Schur ~2 ms; the marginal standard deviations of
the two agree to 0.4 %. The pose errors settle after 2-3 iterations (the noise floor of the window), hence the
default cap of 5 (Ceres counts 6: its iteration 0 is the initial evaluation). ``covariance=False`` saves ~7.5 ms.
Loss, same windows with and without the outliers (mean centre error after a scale fit): squared 24-72 mm against
3-6 mm clean; Huber 2 px 6-9 mm; Cauchy 2 px 4-7.5 mm, within ~1 mm of the clean solve: the default.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from lightglue_ros.core.lie import invert_T, skew, transform
from lightglue_ros import geometry as geo

# Short, stable failure reasons (tests and diagnostics compare against these).
REASON_BAD_INPUT = "bad input"
REASON_FEW_KEYFRAMES = "fewer than 2 keyframes"
REASON_FEW_POINTS = "too few points seen by 2 keyframes"
REASON_NO_PARALLAX = "no parallax (points at infinity or zero baseline)"
REASON_ZERO_BASELINE = "zero baseline between the two oldest keyframes"
REASON_GAUGE = "scale gauge ill-conditioned"
REASON_NEWEST_UNOBSERVED = "newest keyframe sees too few points"
REASON_SOLVER = "solver failure"
REASON_NO_COVARIANCE = "covariance not available"

LOSSES = ("cauchy", "huber", "none")
# Damping of the point blocks in COLMAP's covariance (its default 1e-8 gave inf on the benchmark window): Ceres'
# correction of a Cauchy-downweighted observation can drop its Jacobian to rank 1, leaving a 2-view point singular.
# At 1e-6 the newest pose's standard deviations move by < 0.1 % against 1e-8 under Huber (measured).
COVARIANCE_DAMPING = 1e-6


@dataclass
class BundleConfig:
    """Settings of `adjust`. Pixel quantities are in undistorted pixels."""

    loss: str = "cauchy"  # cauchy | huber | none. Cauchy: outliers lose their pull (measured vs Huber, see module doc)
    loss_scale_px: float = 2.0  # ~2-3 sigma of 0.5-1 px keypoints: inliers keep nearly full weight
    inlier_threshold_px: float = 3.0  # reprojection error after the solve above this: flagged as outlier
    max_iterations: int = 5  # measured: pose errors settle after 2-3, the cost changes < 0.5 % after 5
    max_time_s: float = 0.05  # Ceres stops there whatever the iterations (the pose stage has 40 ms/frame)
    function_tolerance: float = 1e-3  # relative cost decrease that counts as converged
    min_parallax_deg: float = 0.1  # a point's widest ray angle below this: depth unobservable, left out
    min_points: int = 10  # usable points needed for a solve
    min_keyframe_observations: int = 10  # a keyframe seeing fewer usable points is held at its input pose
    min_baseline_ratio: float = 1e-3  # oldest-pair baseline / median point depth below this: no scale gauge
    sigma_floor_px: float = 0.1  # the covariance never trusts keypoints better than this
    covariance: bool = True  # False skips the marginal (~7 ms on the benchmark window)
    num_threads: int = 1

    def check(self) -> str:
        """Why this configuration cannot be used, or ""."""
        if self.loss not in LOSSES:
            return f"unknown loss '{self.loss}' (one of {', '.join(LOSSES)})"
        if not (self.loss_scale_px > 0 and self.inlier_threshold_px > 0 and self.max_iterations >= 1
                and self.max_time_s > 0):
            return "loss scale, inlier threshold, iterations and time must be positive"
        return ""


@dataclass
class BundleWindow:
    """N keyframes and M points with their observations; index 0 is the oldest keyframe (the gauge).

    Observation ``i`` is point ``obs_point[i]`` seen by keyframe ``obs_keyframe[i]`` at pixel ``obs_uv[i]``.
    Points are index-aligned with the caller's track ids (keep the mapping outside).
    """

    K: np.ndarray  # 3x3 pinhole, shared by all keyframes
    poses: np.ndarray  # (N,4,4) T_world_cam, initial guesses
    points: np.ndarray  # (M,3) world, initial guesses (e.g. triangulated)
    obs_keyframe: np.ndarray  # (L,) int
    obs_point: np.ndarray  # (L,) int
    obs_uv: np.ndarray  # (L,2) float, undistorted pixels


@dataclass
class BundleResult:
    """Outcome of `adjust`. On failure ``ok`` is False with ``reason`` and poses/points are the input's."""

    ok: bool
    reason: str = ""
    poses: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 4)))  # (N,4,4) refined T_world_cam
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (M,3) refined (input where unused)
    point_used: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (M,) entered the solve
    held: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (N,) keyframes held at their input
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (L,) used and error <= threshold
    errors_px: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (L,) reprojection error after (NaN: unused)
    initial_cost: float = float("nan")  # Ceres cost 1/2 sum rho(r^2), pixels^2
    final_cost: float = float("nan")
    iterations: int = 0
    converged: bool = False
    covariance: Optional[np.ndarray] = None  # 6x6 newest pose, x y z roll pitch yaw, world frame (module doc)
    sigma_px: float = float("nan")  # scale of the covariance: RMS inlier error, floored
    solve_ms: float = 0.0  # Ceres alone
    covariance_ms: float = 0.0
    total_ms: float = 0.0  # the whole call: checks, problem building, solve, covariance


_PYCOLMAP = None


def _pycolmap():
    # Imported on first use: ~0.2 s and 130 MB of library that the rest of the package does not need.
    global _PYCOLMAP
    if _PYCOLMAP is None:
        import pycolmap
        _PYCOLMAP = pycolmap
    return _PYCOLMAP


def _check_window(w: BundleWindow) -> tuple[str, tuple]:
    try:
        K = np.asarray(w.K, np.float64).reshape(3, 3)
        poses = np.asarray(w.poses, np.float64).reshape(-1, 4, 4)
        pts = np.asarray(w.points, np.float64).reshape(-1, 3)
        kf = np.asarray(w.obs_keyframe).reshape(-1)
        pi = np.asarray(w.obs_point).reshape(-1)
        uv = np.asarray(w.obs_uv, np.float64).reshape(-1, 2)
    except (TypeError, ValueError) as exc:
        return f"{REASON_BAD_INPUT} ({exc})", ()
    if not (len(kf) == len(pi) == len(uv)):
        return f"{REASON_BAD_INPUT} (observation arrays differ in length)", ()
    if len(kf) and (not np.issubdtype(kf.dtype, np.integer) or not np.issubdtype(pi.dtype, np.integer)):
        return f"{REASON_BAD_INPUT} (observation indices are not integers)", ()
    kf, pi = kf.astype(np.int64), pi.astype(np.int64)
    if len(kf) and (kf.min() < 0 or kf.max() >= len(poses) or pi.min() < 0 or pi.max() >= len(pts)):
        return f"{REASON_BAD_INPUT} (observation index out of range)", ()
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(poses)) and K[0, 0] > 0 and K[1, 1] > 0):
        return f"{REASON_BAD_INPUT} (non-finite pose or intrinsics)", ()
    return "", (K, poses, pts, kf, pi, uv)


def _centres_rotations(T_0k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return T_0k[:, :3, 3], T_0k[:, :3, :3]


def _camera_points(T_0k: np.ndarray, X: np.ndarray, kf: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Each observed point in its observing camera's frame: ``R^T (X - c)`` per observation (vectorised)."""
    c, R = _centres_rotations(T_0k)
    return np.einsum("nji,nj->ni", R[kf], X[pi] - c[kf])


def _select_points(cfg: BundleConfig, T_0k, X, kf, pi, uv) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Select the usable points and observations, with each observation's depth and why too few ("" if enough).

    Usable: finite, in front of every camera that sees it, seen by >= 2 keyframes, enough ray angle.
    """
    n_pts = len(X)
    finite_obs = np.all(np.isfinite(uv), axis=1) & np.all(np.isfinite(X[pi]), axis=1)
    depth = _camera_points(T_0k, np.nan_to_num(X), kf, pi)[:, 2]
    bad = np.zeros(n_pts, bool)
    # Cheirality: one observation behind its camera condemns the point (a wrong match or a wrong triangulation).
    np.logical_or.at(bad, pi, ~finite_obs | ~(depth > 0))
    # Distinct keyframes per point (a point matched twice in one keyframe still counts once).
    pairs = np.unique(pi * (int(kf.max(initial=0)) + 1) + kf) // (int(kf.max(initial=0)) + 1)
    n_kf = np.bincount(pairs, minlength=n_pts)
    seen_twice = ~bad & (n_kf >= 2)
    # Parallax: widest angle between the rays from the camera centres to the point, measured against the ray of
    # the point's first observation (at least half the widest pairwise angle, exact for two views).
    c, _ = _centres_rotations(T_0k)
    rays = np.nan_to_num(X)[pi] - c[kf]
    rays /= np.maximum(np.linalg.norm(rays, axis=1, keepdims=True), 1e-300)
    first = np.full(n_pts, -1, np.int64)
    order = np.arange(len(pi))[::-1]
    first[pi[order]] = order  # the last write wins: the earliest observation
    cosang = np.einsum("ij,ij->i", rays, rays[first[pi]])
    min_cos = np.ones(n_pts)
    np.minimum.at(min_cos, pi, cosang)
    parallax_ok = min_cos <= np.cos(np.radians(cfg.min_parallax_deg))
    used = seen_twice & parallax_ok
    obs_used = used[pi] & finite_obs
    why = ""
    if used.sum() < cfg.min_points:
        why = REASON_NO_PARALLAX if seen_twice.sum() >= cfg.min_points else REASON_FEW_POINTS
        why += f" ({int(used.sum())} usable, {int(seen_twice.sum())} seen twice, need {cfg.min_points})"
    return used, obs_used, depth, why


def _colmap_to_package(T_cw: np.ndarray) -> np.ndarray:
    """Jacobian from COLMAP's pose tangent to the package's, both in the same world frame.

    COLMAP (Ceres' quaternion manifold) perturbs ``cam_from_world`` as ``R' = Exp(2 d) R``, ``t' = t + dt``
    (half-angle rotation, camera axes; checked numerically in the tests). The package perturbs ``T_world_cam`` as
    camera centre ``c' = c + dc`` and ``R_wc' = Exp(dphi) R_wc``. With ``c = -R^T t``:
    ``dc = -2 R^T [t]x d - R^T dt`` and ``dphi = -2 R^T d``. Rows: (dc, dphi); columns: (d, dt).
    """
    R, t = T_cw[:3, :3], T_cw[:3, 3]
    J = np.zeros((6, 6))
    J[:3, :3] = -2.0 * R.T @ skew(t)
    J[:3, 3:] = -R.T
    J[3:, :3] = -2.0 * R.T
    return J


def _expand(C: np.ndarray, fixed: Optional[int], rows: bool, cols: bool) -> np.ndarray:
    """Insert the zero row/column of the gauge-fixed translation coordinate into a COLMAP covariance block."""
    if fixed is None:
        return C
    if rows:
        C = np.insert(C, 3 + fixed, 0.0, axis=0)
    if cols:
        C = np.insert(C, 3 + fixed, 0.0, axis=1)
    return C


def adjust(window: BundleWindow, config: Optional[BundleConfig] = None) -> BundleResult:
    """Refine the keyframe poses and points of ``window`` jointly; see the module docstring for gauge and covariance.

    Points seen by fewer than 2 keyframes, behind any camera that sees them, non-finite, or with less ray angle
    than ``min_parallax_deg`` are left out (``point_used`` False, returned unchanged). A keyframe seeing fewer than
    ``min_keyframe_observations`` usable points is held at its input pose (``held``). Never raises on data: a
    degenerate window (1 keyframe, no point seen twice, points at infinity, zero baseline, ...) returns ``ok``
    False with a reason and the input unchanged.
    """
    t_start = time.perf_counter()
    cfg = config or BundleConfig()
    why, arrays = _check_window(window)
    res = BundleResult(False, why)
    if not why:
        why = cfg.check()
        res.reason = why and f"{REASON_BAD_INPUT} ({why})"
    if res.reason:
        return res
    K, poses, pts, kf, pi, uv = arrays
    n_kf, n_obs = len(poses), len(kf)
    res.poses, res.points = poses.copy(), pts.copy()
    res.point_used, res.held = np.zeros(len(pts), bool), np.zeros(n_kf, bool)
    res.inliers, res.errors_px = np.zeros(n_obs, bool), np.full(n_obs, np.nan)

    def done(reason: str = "") -> BundleResult:
        res.reason = reason
        res.total_ms = (time.perf_counter() - t_start) * 1e3
        return res

    if n_kf < 2:
        return done(REASON_FEW_KEYFRAMES)
    # Work in the oldest keyframe's frame: it is the identity there (the gauge) and coordinates stay small.
    T_w0 = poses[0]
    T_0w = invert_T(T_w0)
    T_0k = np.einsum("ij,njk->nik", T_0w, poses)
    X = transform(T_0w, pts)  # a non-finite point stays non-finite (row-wise) and is left out below
    used, obs_used, depth, why = _select_points(cfg, T_0k, X, kf, pi, uv)
    if why:
        return done(why)
    n_seen = np.bincount(kf[obs_used], minlength=n_kf)
    held = n_seen < cfg.min_keyframe_observations
    held[0] = True
    if held[-1]:
        return done(f"{REASON_NEWEST_UNOBSERVED} ({int(n_seen[-1])} < {cfg.min_keyframe_observations})")
    # The scale gauge: the oldest baseline, unless another keyframe is held, which then fixes the scale with the
    # oldest (COLMAP needs no gauge with two constant poses; rescaling to the oldest baseline would move it).
    gauge_kf = int(np.flatnonzero(held[1:])[0]) + 1 if held[1:].any() else 1
    c1 = T_0k[gauge_kf, :3, 3]
    baseline = float(np.linalg.norm(c1))
    median_depth = float(np.median(depth[obs_used]))
    if baseline <= cfg.min_baseline_ratio * median_depth:
        return done(f"{REASON_ZERO_BASELINE} ({baseline:.3g} at median depth {median_depth:.3g}, keyframe {gauge_kf})")
    gauge_dim = None
    if gauge_kf == 1 and not held[1]:
        # COLMAP fixes coordinate argmax|c1| of t_cam1_cam0 = -R1^T c1: it must carry the baseline, or scale is free.
        gauge_dim = int(np.argmax(np.abs(c1)))
        t1 = -T_0k[1, :3, :3].T @ c1
        if abs(t1[gauge_dim]) < 0.5 * baseline:
            return done(f"{REASON_GAUGE} (rotation between the oldest keyframes moves the baseline off its axis)")
    res.held = held

    pycolmap = _pycolmap()
    rec = pycolmap.Reconstruction()
    cam = pycolmap.Camera(model="PINHOLE", width=max(1, int(round(2 * K[0, 2]))),
                          height=max(1, int(round(2 * K[1, 2]))), params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2]],
                          camera_id=1)
    rec.add_camera_with_trivial_rig(cam)
    rows = np.flatnonzero(obs_used)
    slot = np.zeros(n_obs, np.int64)  # index of each observation among its image's keypoints
    T_cw = np.array([invert_T(T) for T in T_0k])
    for k in range(n_kf):
        mine = rows[kf[rows] == k]
        slot[mine] = np.arange(len(mine))
        image = pycolmap.Image(name=str(k), keypoints=uv[mine], camera_id=1, image_id=k + 1)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(T_cw[k, :3, :]))
    by_point = rows[np.argsort(pi[rows], kind="stable")]
    bounds = np.searchsorted(pi[by_point], np.arange(len(pts) + 1)).tolist()
    element = pycolmap.TrackElement
    elements = [element(a, b) for a, b in zip((kf[by_point] + 1).tolist(), slot[by_point].tolist())]
    point_ids = {}
    X_list = X.tolist()
    for j in np.flatnonzero(used).tolist():
        point_ids[j] = rec.add_point3D(X_list[j], pycolmap.Track(elements[bounds[j]:bounds[j + 1]]))

    ba_cfg = pycolmap.BundleAdjustmentConfig()
    for k in range(n_kf):
        ba_cfg.add_image(k + 1)
        if held[k]:
            ba_cfg.set_constant_rig_from_world_pose(k + 1)
    ba_cfg.set_constant_cam_intrinsics(1)
    ba_cfg.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
    opts = pycolmap.BundleAdjustmentOptions()
    opts.refine_focal_length = opts.refine_principal_point = opts.refine_extra_params = False
    opts.refine_sensor_from_rig = False
    opts.print_summary = False
    loss_type = type(opts.ceres.loss_function_type)
    opts.ceres.loss_function_type = {"cauchy": loss_type.CAUCHY, "huber": loss_type.HUBER,
                                     "none": loss_type.TRIVIAL}[cfg.loss]
    opts.ceres.loss_function_scale = float(cfg.loss_scale_px)
    solver = opts.ceres.solver_options
    solver.max_num_iterations = int(cfg.max_iterations)
    solver.max_solver_time_in_seconds = float(cfg.max_time_s)
    solver.function_tolerance = float(cfg.function_tolerance)
    solver.num_threads = int(cfg.num_threads)
    opts.ceres.solver_options = solver
    try:
        adjuster = pycolmap.create_default_ceres_bundle_adjuster(opts, ba_cfg, rec)
        summary = adjuster.solve()
    except Exception as exc:  # pycolmap raises on inconsistent problems; report, never crash the odometry
        return done(f"{REASON_SOLVER} ({type(exc).__name__}: {exc})")
    ceres = summary.ceres_summary
    res.solve_ms = float(ceres.total_time_in_seconds) * 1e3
    res.initial_cost, res.final_cost = float(ceres.initial_cost), float(ceres.final_cost)
    res.iterations = int(ceres.num_successful_steps + ceres.num_unsuccessful_steps)
    res.converged = summary.termination_type == pycolmap.BundleAdjustmentTerminationType.CONVERGENCE
    if not summary.is_solution_usable() or not np.isfinite(res.final_cost):
        return done(f"{REASON_SOLVER} ({ceres.message})")

    # Read back, then scale about the oldest centre so the oldest baseline is exactly the input's (module doc).
    T_cw_sol = np.array([np.vstack([rec.image(k + 1).cam_from_world().matrix(), [0, 0, 0, 1]]) for k in range(n_kf)])
    T_0k_sol = np.array([invert_T(T) for T in T_cw_sol])
    X_sol = X.copy()
    X_sol[list(point_ids)] = [rec.point3D(pid).xyz for pid in point_ids.values()]
    scale = 1.0 if gauge_dim is None else baseline / max(float(np.linalg.norm(T_0k_sol[1, :3, 3])), 1e-300)
    T_0k_sol[:, :3, 3] *= scale
    X_sol[used] *= scale
    err = np.linalg.norm(geo.project(K, _camera_points(T_0k_sol, np.nan_to_num(X_sol), kf, pi)) - uv, axis=1)
    res.errors_px = np.where(obs_used, err, np.nan)
    res.inliers = obs_used & (err <= cfg.inlier_threshold_px)
    res.poses = np.einsum("ij,njk->nik", T_w0, T_0k_sol)
    res.poses[held] = poses[held]  # bit-exact: the frame change and quaternions round off in the last digits
    res.points = np.where(used[:, None], transform(T_w0, X_sol), pts)
    res.point_used = used
    n_free = 6 * int((~held).sum()) - (gauge_dim is not None) + 3 * int(used.sum())
    n_in = int(res.inliers.sum())
    if n_in:
        res.sigma_px = float(np.sqrt(np.sum(err[res.inliers] ** 2) / max(2 * n_in - n_free, 1)))
    res.sigma_px = max(res.sigma_px if np.isfinite(res.sigma_px) else 0.0, cfg.sigma_floor_px)
    res.ok = True
    if cfg.covariance:
        t_cov = time.perf_counter()
        res.covariance = _newest_covariance(pycolmap, rec, adjuster, T_cw_sol, T_0k_sol, held, gauge_dim, scale,
                                            T_w0[:3, :3], res.sigma_px)
        res.covariance_ms = (time.perf_counter() - t_cov) * 1e3
        if res.covariance is None:
            return done(REASON_NO_COVARIANCE)
    return done()


def _newest_covariance(pycolmap, rec, adjuster, T_cw, T_0k, held, gauge_dim, scale, R_w0, sigma_px):
    """6x6 of the newest pose in the package convention, distance gauge, world frame, times sigma^2."""
    n = len(T_cw)
    opts = pycolmap.BACovarianceOptions()
    opts.params = pycolmap.BACovarianceOptionsParams.POSES
    opts.damping = COVARIANCE_DAMPING
    try:
        est = pycolmap.estimate_ba_covariance(opts, rec, adjuster)
    except Exception:  # a rank-deficient window (e.g. a keyframe constrained by too few points)
        return None
    if est is None:
        return None
    C_nn = est.get_cam_cov_from_world(n)
    if C_nn is None:
        return None
    J_n = _colmap_to_package(T_cw[n - 1])
    newest_is_gauge = n == 2 and gauge_dim is not None
    S_nn = J_n @ _expand(C_nn, gauge_dim if newest_is_gauge else None, True, True) @ J_n.T
    if gauge_dim is not None:
        # The solve held t_cam1_cam0[gauge_dim]; the result holds |c1| instead. To first order the rescale
        # c' = c |c1_in| / |c1| adds B e1 to the newest pose's error, B = -c_n c1^T / |c1|^2 on the position.
        c1, c_n = T_0k[1, :3, 3], T_0k[n - 1, :3, 3]
        B = np.zeros((6, 6))
        B[:3, :3] = -np.outer(c_n, c1) / float(c1 @ c1)
        J_1 = _colmap_to_package(T_cw[1])
        if newest_is_gauge:
            S_11, S_1n = S_nn, S_nn
        else:
            C_11 = est.get_cam_cov_from_world(2)
            C_1n = est.get_cam_cross_cov_from_world(2, n)
            if C_11 is None or C_1n is None:
                return None
            S_11 = J_1 @ _expand(C_11, gauge_dim, True, True) @ J_1.T
            S_1n = J_1 @ _expand(C_1n, gauge_dim, True, False) @ J_n.T
        S_nn = S_nn + B @ S_1n + S_1n.T @ B.T + B @ S_11 @ B.T
    G = np.zeros((6, 6))
    G[:3, :3] = R_w0 * scale  # positions scale with the window; rotations do not
    G[3:, 3:] = R_w0
    cov = sigma_px ** 2 * (G @ S_nn @ G.T)
    cov = 0.5 * (cov + cov.T)
    return cov if np.all(np.isfinite(cov)) else None
