"""Solver comparison for `bundle.adjust`, and the synthetic window the tests use.

``python -m lightglue_ros.tools.bench_bundle [--runs 5] [--seeds 3]`` times Ceres (pycolmap, the product) against GTSAM
(``pip install gtsam==4.3.0``; skipped when missing) on windows of 10 keyframes and ~1000 tracks seen 2-10 times
(KITTI-like camera moving forward 0.5-1 m per keyframe, 0.7 px noise, 5 % outliers of 5-50 px), one thread, and
prints median times and pose errors (camera centres after a scale fit, mean over keyframes; rotation, mean).
GTSAM runs the same problem: LevenbergMarquardt over GenericProjectionFactorCal3_S2 with a robust noise model,
the oldest pose under a tight prior, the oldest baseline under a RangeFactor, Marginals on the inlier graph.
Timings on a shared machine are rough: repeat, and read medians.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np

from lightglue_ros.core.lie import invert_T, make_T, so3_exp, transform
from lightglue_ros import geometry as geo
from lightglue_ros.odometry.bundle import BundleConfig, BundleWindow, adjust

KITTI_K = np.array([[707.0912, 0.0, 601.8873], [0.0, 707.0912, 183.1104], [0.0, 0.0, 1.0]])
KITTI_SIZE = (1226, 370)


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@dataclass
class SyntheticWindow:
    """A window with its exact ground truth (``outlier`` marks the observations moved 5-50 px)."""

    window: BundleWindow
    true_poses: np.ndarray
    true_points: np.ndarray
    outlier: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def synthetic_window(n_kf: int = 10, n_tracks: int = 1000, noise_px: float = 0.7, outliers: float = 0.05,
                     seed: int = 0, rot_deg: float = 0.2, trans_m: float = 0.03, depth_noise: float = 0.03,
                     warm: bool = False, depth_range=(4.0, 40.0)) -> SyntheticWindow:
    """Simulate a car-like drive: forward 0.5-1 m per keyframe, heading +-1 deg per keyframe, points 4-40 m ahead.

    Initial guesses: the oldest pose exact, the others rotated ~``rot_deg`` and shifted ~``trans_m`` (the oldest
    baseline keeps its true length: that is the scale of the input), points off by ``depth_noise`` of their depth
    plus 5 cm. ``warm`` perturbs only the newest keyframe and the points it sees first (a window adjusted at the
    previous keyframe plus one new pose). The same seed gives the same draws whatever ``outliers`` is.
    """
    rng = np.random.default_rng(seed)
    w, h = KITTI_SIZE
    K = KITTI_K
    poses, c, yaw = [], np.zeros(3), 0.0
    for k in range(n_kf):
        if k:
            yaw += np.radians(rng.uniform(-1.0, 1.0))
            c = c + _rot_y(yaw) @ np.array([0.0, 0.0, rng.uniform(0.5, 1.0)])
        poses.append(make_T(_rot_y(yaw), c))
    poses = np.array(poses)
    inv = np.array([invert_T(T) for T in poses])
    pts, obs, first = [], [], []
    while len(pts) < n_tracks:
        s = int(rng.integers(0, max(n_kf - 1, 1)))
        end = min(n_kf, s + int(rng.integers(2, 11)))
        Xw = transform(poses[s], geo.bearings(K, rng.uniform([0, 0], [w, h])[None]) * rng.uniform(*depth_range))
        rows = []
        for k in range(s, end):
            Xk = transform(inv[k], Xw)
            p = geo.project(K, Xk)[0]
            if Xk[0, 2] <= 0.5 or not (0 <= p[0] < w and 0 <= p[1] < h):
                break
            rows.append((k, len(pts), p[0], p[1]))
        if len(rows) < min(2, n_kf):
            continue
        pts.append(Xw[0])
        first.append(s)
        obs += rows
    pts, first, obs = np.array(pts), np.array(first), np.array(obs)
    kf, pi = obs[:, 0].astype(np.int64), obs[:, 1].astype(np.int64)
    uv = obs[:, 2:] + rng.normal(0.0, noise_px, (len(obs), 2))
    outlier = rng.random(len(uv)) < outliers
    ang, mag = rng.uniform(0, 2 * np.pi, len(uv)), rng.uniform(5.0, 50.0, len(uv))
    uv += np.stack([np.cos(ang), np.sin(ang)], axis=1) * mag[:, None] * outlier[:, None]
    init = poses.copy()
    for k in range(1, n_kf):
        dR = so3_exp(rng.normal(0.0, np.radians(rot_deg), 3))
        dt = rng.normal(0.0, trans_m, 3)
        if warm and k < n_kf - 1:
            continue
        init[k, :3, :3] = dR @ init[k, :3, :3]
        init[k, :3, 3] += dt
    if n_kf > 1:
        v = init[1, :3, 3] - init[0, :3, 3]
        init[1, :3, 3] = init[0, :3, 3] + v / np.linalg.norm(v) * np.linalg.norm(poses[1, :3, 3] - poses[0, :3, 3])
    X0 = pts * (1.0 + rng.normal(0.0, depth_noise, (len(pts), 1))) + rng.normal(0.0, 0.05, pts.shape)
    if warm:
        X0 = np.where((first == n_kf - 1)[:, None], X0, pts)
    window = BundleWindow(K=K.copy(), poses=init, points=X0, obs_keyframe=kf, obs_point=pi, obs_uv=uv)
    return SyntheticWindow(window, poses, pts, outlier)


def pose_errors(poses: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(mean centre error after a least-squares scale about the oldest centre, mean rotation error in deg)."""
    c, ct = poses[:, :3, 3] - poses[0, :3, 3], truth[:, :3, 3] - truth[0, :3, 3]
    s = float((c * ct).sum() / max((c * c).sum(), 1e-300))
    rot = [np.degrees(np.arccos(np.clip((np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2, -1, 1)))
           for a, b in zip(poses, truth)]
    return float(np.linalg.norm(c * s - ct, axis=1).mean()), float(np.mean(rot))


def adjust_gtsam(window: BundleWindow, config: BundleConfig) -> dict:
    """Run the same adjustment in GTSAM (comparison only): poses, iterations, times in ms, newest covariance."""
    import gtsam
    from gtsam.symbol_shorthand import L, X

    t0 = time.perf_counter()
    K, poses = window.K, window.poses
    n = len(poses)
    T_0w = invert_T(poses[0])
    cal = gtsam.Cal3_S2(K[0, 0], K[1, 1], 0.0, K[0, 2], K[1, 2])
    est = {"cauchy": gtsam.noiseModel.mEstimator.Cauchy, "huber": gtsam.noiseModel.mEstimator.Huber}
    base = gtsam.noiseModel.Isotropic.Sigma(2, 1.0)
    noise = gtsam.noiseModel.Robust.Create(est[config.loss].Create(config.loss_scale_px), base) \
        if config.loss in est else base
    kf, pi, uv = window.obs_keyframe, window.obs_point, window.obs_uv
    seen = np.zeros(len(window.points), np.int64)
    np.add.at(seen, pi, 1)
    values = gtsam.Values()
    for k in range(n):
        values.insert(X(k), gtsam.Pose3(T_0w @ poses[k]))
    P = transform(T_0w, window.points)
    for j in np.flatnonzero(seen >= 2):
        values.insert(L(int(j)), P[j])
    d = float(np.linalg.norm((T_0w @ poses[1])[:3, 3]))

    def graph_of(rows, gauge_sigma):
        g = gtsam.NonlinearFactorGraph()
        for r in rows:
            g.add(gtsam.GenericProjectionFactorCal3_S2(uv[r], noise, X(int(kf[r])), L(int(pi[r])), cal))
        g.add(gtsam.PriorFactorPose3(X(0), gtsam.Pose3(), gtsam.noiseModel.Isotropic.Sigma(6, 1e-6)))
        # A tight range prior stalls LM (its curvature is not in the linear model): 1e-3 of the baseline in the
        # solve, where the cost has nothing to pull against (scale is a gauge freedom), tight for the marginal.
        g.add(gtsam.RangeFactorPose3(X(0), X(1), d, gtsam.noiseModel.Isotropic.Sigma(1, gauge_sigma * d)))
        return g

    rows = np.flatnonzero(seen[pi] >= 2)
    graph = graph_of(rows, 1e-3)
    t1 = time.perf_counter()
    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(config.max_iterations)
    params.setRelativeErrorTol(config.function_tolerance)
    opt = gtsam.LevenbergMarquardtOptimizer(graph, values, params)
    sol = opt.optimize()
    t2 = time.perf_counter()
    T_0k = np.array([sol.atPose3(X(k)).matrix() for k in range(n)])
    Xs = {j: sol.atPoint3(L(int(j))) for j in np.flatnonzero(seen >= 2)}
    # Inlier graph for the marginal: a point pushed far away by an outlier makes GTSAM's Cholesky indeterminate.
    err = np.full(len(kf), np.inf)
    for r in rows:
        Tk = invert_T(T_0k[kf[r]])
        err[r] = np.linalg.norm(geo.project(K, transform(Tk, Xs[pi[r]][None]))[0] - uv[r])
    inl = rows[err[rows] <= config.inlier_threshold_px]
    cnt = np.zeros(len(window.points), np.int64)
    np.add.at(cnt, pi[inl], 1)
    inl = inl[cnt[pi[inl]] >= 2]
    cov, t3 = None, t2
    try:
        keep = gtsam.Values()
        for k in range(n):
            keep.insert(X(k), sol.atPose3(X(k)))
        for j in np.unique(pi[inl]):
            keep.insert(L(int(j)), Xs[j])
        cov = gtsam.Marginals(graph_of(inl, 1e-6), keep).marginalCovariance(X(n - 1))
    except RuntimeError:
        pass
    t3 = time.perf_counter()
    scale = d / float(np.linalg.norm(T_0k[1, :3, 3]))
    T_0k[:, :3, 3] *= scale
    out = np.einsum("ij,njk->nik", poses[0], T_0k)
    if cov is not None:
        # Pose3 tangent (rotation, translation) in body axes, T' = T Exp(xi) -> package (dc, dphi) in world axes.
        R = out[-1, :3, :3]
        G = np.zeros((6, 6))
        G[:3, 3:] = R
        G[3:, :3] = R
        cov = G @ cov @ G.T
    return {"poses": out, "iterations": opt.iterations(), "build_ms": (t1 - t0) * 1e3, "solve_ms": (t2 - t1) * 1e3,
            "covariance_ms": (t3 - t2) * 1e3, "covariance": cov}


def _median(values) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def main(argv=None) -> int:
    """Print the solver comparison table (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per window (median)")
    ap.add_argument("--seeds", type=int, default=3, help="windows (different random scenes)")
    ap.add_argument("--loss", default="cauchy")
    args = ap.parse_args(argv)
    try:
        import gtsam  # noqa: F401
        have_gtsam = True
    except ImportError:
        have_gtsam = False
        print("gtsam not installed (pip install gtsam==4.3.0): Ceres only")
    cfg = BundleConfig(loss=args.loss)
    print(f"{'start':5} {'solver':7} {'seed':>4} {'obs':>5} {'it':>3} {'build':>6} {'solve':>6} {'cov':>6} "
          f"{'total':>6} {'pos err mm':>10} {'rot err deg':>11}   (ms, median of {args.runs})")
    for warm in (False, True):
        for seed in range(args.seeds):
            sw = synthetic_window(seed=seed, warm=warm)
            init = pose_errors(sw.window.poses, sw.true_poses)
            label = "warm" if warm else "cold"
            print(f"{label:5} {'initial':7} {seed:4d} {len(sw.window.obs_uv):5d} {'':>3} {'':>6} {'':>6} {'':>6} "
                  f"{'':>6} {init[0] * 1e3:10.2f} {init[1]:11.4f}")
            runs = [adjust(sw.window, cfg) for _ in range(args.runs)]
            r = runs[-1]
            e = pose_errors(r.poses, sw.true_poses)
            build = [x.total_ms - x.solve_ms - x.covariance_ms for x in runs]
            print(f"{label:5} {'ceres':7} {seed:4d} {len(sw.window.obs_uv):5d} {r.iterations:3d} "
                  f"{_median(build):6.1f} {_median([x.solve_ms for x in runs]):6.1f} "
                  f"{_median([x.covariance_ms for x in runs]):6.1f} {_median([x.total_ms for x in runs]):6.1f} "
                  f"{e[0] * 1e3:10.2f} {e[1]:11.4f}  {r.reason or 'ok'}")
            if have_gtsam:
                g = [adjust_gtsam(sw.window, cfg) for _ in range(args.runs)]
                e = pose_errors(g[-1]["poses"], sw.true_poses)
                total = [x["build_ms"] + x["solve_ms"] + x["covariance_ms"] for x in g]
                cov = g[-1]["covariance"]
                # GTSAM's marginal is in unit pixels: compare standard deviations at Ceres' sigma.
                ratio = "no cov"
                if cov is not None and r.covariance is not None:
                    std = np.median(np.sqrt(np.diag(r.covariance) / np.diag(cov))) / r.sigma_px
                    ratio = f"std ceres/gtsam {std:.3f}"
                print(f"{label:5} {'gtsam':7} {seed:4d} {len(sw.window.obs_uv):5d} {g[-1]['iterations']:3d} "
                      f"{_median([x['build_ms'] for x in g]):6.1f} {_median([x['solve_ms'] for x in g]):6.1f} "
                      f"{_median([x['covariance_ms'] for x in g]):6.1f} {_median(total):6.1f} "
                      f"{e[0] * 1e3:10.2f} {e[1]:11.4f}  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
