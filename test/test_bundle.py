"""Windowed bundle adjustment (`lightglue_ros.odometry.bundle`) on exact synthetic drives (KITTI-like camera, fx 707).

The solver comparison behind the choice of Ceres/pycolmap is `python -m lightglue_ros.tools.bench_bundle`.
"""
import dataclasses

import numpy as np
import pytest

pytest.importorskip("pycolmap")

from lightglue_ros.core.lie import invert_T, make_T, so3_exp, transform  # noqa: E402
from lightglue_ros.odometry import bundle as ba  # noqa: E402
from lightglue_ros import geometry as geo  # noqa: E402
from lightglue_ros.tools.bench_bundle import KITTI_SIZE, pose_errors, synthetic_window  # noqa: E402

EXACT = ba.BundleConfig(max_iterations=50, function_tolerance=1e-12)


def _path(truth):
    return float(np.linalg.norm(truth[-1, :3, 3] - truth[0, :3, 3]))


def _rot_err(a, b):
    """Largest rotation angle between paired poses (rad)."""
    return max(np.arccos(np.clip((np.trace(x[:3, :3] @ y[:3, :3].T) - 1) / 2, -1, 1)) for x, y in zip(a, b))


def test_noise_free_converges_to_truth():
    sw = synthetic_window(n_kf=6, n_tracks=200, noise_px=0.0, outliers=0.0, seed=1)
    assert pose_errors(sw.window.poses, sw.true_poses)[0] > 1e-2  # the start is really off
    r = ba.adjust(sw.window, EXACT)
    assert r.ok and r.reason == "", r.reason
    assert r.point_used.all() and r.inliers.all()
    assert np.abs(r.poses[:, :3, 3] - sw.true_poses[:, :3, 3]).max() < 1e-6 * _path(sw.true_poses)
    assert _rot_err(r.poses, sw.true_poses) < 1e-6
    depth = np.linalg.norm(sw.true_points - sw.true_poses[0, :3, 3], axis=1)
    assert (np.linalg.norm(r.points - sw.true_points, axis=1) / depth).max() < 1e-6
    assert r.final_cost < 1e-9 * r.initial_cost and r.iterations >= 2
    assert r.solve_ms > 0 and r.total_ms >= r.solve_ms + r.covariance_ms


def test_noisy_window_reduces_pose_error():
    sw = synthetic_window(n_kf=8, n_tracks=400, noise_px=0.7, outliers=0.05, seed=2)
    before = pose_errors(sw.window.poses, sw.true_poses)
    r = ba.adjust(sw.window)
    assert r.ok, r.reason
    after = pose_errors(r.poses, sw.true_poses)
    assert after[0] < 0.4 * before[0] and after[1] < 0.4 * before[1], (before, after)
    assert r.final_cost < 0.5 * r.initial_cost
    assert 0.5 < r.sigma_px < 1.0  # the RMS of inlier errors estimates the 0.7 px noise


def test_outliers_are_flagged_and_do_not_pull():
    kwargs = dict(n_kf=8, n_tracks=400, noise_px=0.7, seed=3)
    dirty, clean = synthetic_window(outliers=0.05, **kwargs), synthetic_window(outliers=0.0, **kwargs)
    assert dirty.outlier.sum() > 50 and np.array_equal(dirty.window.poses, clean.window.poses)
    r, rc = ba.adjust(dirty.window), ba.adjust(clean.window)
    used = r.point_used[dirty.window.obs_point]
    out = dirty.outlier & used
    assert (~r.inliers[out]).mean() > 0.9  # most outliers flagged (a few 5 px ones along the epipolar line pass)
    assert r.inliers[used & ~dirty.outlier].mean() > 0.98  # inliers kept
    err, err_clean = pose_errors(r.poses, dirty.true_poses)[0], pose_errors(rc.poses, clean.true_poses)[0]
    assert err < 1.5 * err_clean + 1e-3, (err, err_clean)
    # The same data under a plain squared loss is pulled far off: what the robust loss prevents.
    plain = ba.adjust(dirty.window, ba.BundleConfig(loss="none"))
    assert pose_errors(plain.poses, dirty.true_poses)[0] > 2 * err


def test_gauge_oldest_pose_and_scale_are_the_inputs():
    sw = synthetic_window(n_kf=6, n_tracks=200, noise_px=0.7, outliers=0.05, seed=4)
    r = ba.adjust(sw.window)
    assert r.ok, r.reason
    assert np.allclose(r.poses[0], sw.window.poses[0], atol=1e-12, rtol=0)
    d_in = np.linalg.norm(sw.window.poses[1, :3, 3] - sw.window.poses[0, :3, 3])
    d_out = np.linalg.norm(r.poses[1, :3, 3] - r.poses[0, :3, 3])
    assert abs(d_out / d_in - 1) < 1e-9
    # Noise-free data given at 1.3x scale (only the oldest baseline sets it): the whole solution is the truth
    # scaled 1.3x about the oldest camera, not the truth.
    sw = synthetic_window(n_kf=6, n_tracks=200, noise_px=0.0, outliers=0.0, seed=5)
    w = sw.window
    poses = w.poses.copy()
    c0 = poses[0, :3, 3]
    poses[1:, :3, 3] = c0 + 1.3 * (poses[1:, :3, 3] - c0)
    r = ba.adjust(dataclasses.replace(w, poses=poses, points=c0 + 1.3 * (w.points - c0)), EXACT)
    assert r.ok, r.reason
    expected = c0 + 1.3 * (sw.true_poses[:, :3, 3] - c0)
    assert np.abs(r.poses[:, :3, 3] - expected).max() < 1e-6 * _path(sw.true_poses)
    assert _rot_err(r.poses, sw.true_poses) < 1e-6


def _gauss_newton_covariance(sw, sigma_px):
    """Newest-pose covariance by finite differences in the package's convention, independently of COLMAP.

    Oldest pose fixed, second centre on the sphere of the input baseline; others perturbed as c + dc,
    Exp(dphi) R_world_cam; points X + dX. Covariance sigma^2 (J^T J)^-1, newest block (dc, dphi).
    """
    w, T, X = sw.window, sw.true_poses, sw.true_points
    n, K = len(T), w.K
    c1 = T[1, :3, 3] - T[0, :3, 3]
    d = np.linalg.norm(c1)
    u = np.cross(c1, [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(c1 / d, u)

    def residuals(x):
        poses = T.copy()
        poses[1, :3, :3] = so3_exp(x[0:3]) @ T[1, :3, :3]
        p = c1 + x[3] * u + x[4] * v
        poses[1, :3, 3] = T[0, :3, 3] + d * p / np.linalg.norm(p)
        for k in range(2, n):
            o = 5 + 6 * (k - 2)
            poses[k, :3, 3] = T[k, :3, 3] + x[o:o + 3]
            poses[k, :3, :3] = so3_exp(x[o + 3:o + 6]) @ T[k, :3, :3]
        pts = X + x[5 + 6 * (n - 2):].reshape(-1, 3)
        inv = np.array([invert_T(P) for P in poses])
        Xc = np.einsum("nij,nj->ni", inv[w.obs_keyframe, :3, :3], pts[w.obs_point]) + inv[w.obs_keyframe, :3, 3]
        return (geo.project(K, Xc) - w.obs_uv).ravel()

    m = 5 + 6 * (n - 2) + 3 * len(X)
    J = np.empty((2 * len(w.obs_uv), m))
    for i in range(m):
        e = np.zeros(m)
        e[i] = 1e-6
        J[:, i] = (residuals(e) - residuals(-e)) / 2e-6
    cov = np.linalg.inv(J.T @ J) * sigma_px ** 2
    o = 5 + 6 * (n - 3)
    return cov[o:o + 6, o:o + 6]


def test_covariance_matches_gauss_newton_and_is_in_the_world_frame():
    sw = synthetic_window(n_kf=4, n_tracks=40, noise_px=0.0, outliers=0.0, seed=6)
    r = ba.adjust(sw.window, EXACT)
    assert r.ok, r.reason
    assert r.sigma_px == pytest.approx(EXACT.sigma_floor_px)  # exact data: the floor
    ref = _gauss_newton_covariance(sw, r.sigma_px)
    std, std_ref = np.sqrt(np.diag(r.covariance)), np.sqrt(np.diag(ref))
    assert np.allclose(std, std_ref, rtol=1e-3), (std, std_ref)
    corr = r.covariance / np.outer(std, std)
    assert np.abs(corr - ref / np.outer(std_ref, std_ref)).max() < 1e-3
    # The same window seen from a rotated and shifted world: the covariance rotates with it (world frame).
    R = so3_exp(np.array([0.3, -1.1, 0.4]))
    T_new_old = make_T(R, [5.0, -2.0, 7.0])
    w = sw.window
    moved = dataclasses.replace(w, poses=np.einsum("ij,njk->nik", T_new_old, w.poses),
                                points=transform(T_new_old, w.points))
    rm = ba.adjust(moved, EXACT)
    G = np.kron(np.eye(2), R)
    assert np.allclose(rm.covariance, G @ r.covariance @ G.T, rtol=1e-4, atol=1e-6 * np.abs(r.covariance).max())


def test_covariance_is_spd_and_shrinks_with_more_observations():
    few = synthetic_window(n_kf=6, n_tracks=100, noise_px=0.0, outliers=0.0, seed=7)
    many = synthetic_window(n_kf=6, n_tracks=400, noise_px=0.0, outliers=0.0, seed=7)
    assert np.array_equal(few.true_poses, many.true_poses)
    assert np.array_equal(many.true_points[:100], few.true_points)  # the same tracks, and more
    cf, cm = ba.adjust(few.window, EXACT).covariance, ba.adjust(many.window, EXACT).covariance
    for c in (cf, cm):
        assert np.allclose(c, c.T, rtol=0, atol=0) and np.linalg.eigvalsh(c).min() > 0
    # More observations of the same geometry: less uncertainty in every direction (Loewner order).
    assert np.linalg.eigvalsh(cf - cm).min() > -1e-9 * np.abs(cf).max()
    assert np.trace(cm) < 0.6 * np.trace(cf)
    noisy = ba.adjust(synthetic_window(n_kf=6, n_tracks=100, noise_px=1.0, outliers=0.0, seed=7).window)
    assert np.trace(noisy.covariance) > 30 * np.trace(cf)  # 1 px noise against the 0.1 px floor: ~100x variance


def test_two_keyframe_window_covariance_is_singular_along_the_baseline():
    sw = synthetic_window(n_kf=2, n_tracks=150, noise_px=0.5, outliers=0.0, seed=8)
    r = ba.adjust(sw.window)
    assert r.ok, r.reason
    b = r.poses[1, :3, 3] - r.poses[0, :3, 3]
    b /= np.linalg.norm(b)
    assert b @ r.covariance[:3, :3] @ b < 1e-9 * np.trace(r.covariance[:3, :3])
    assert np.linalg.eigvalsh(r.covariance).min() > -1e-12


def test_points_left_out_and_keyframes_held():
    sw = synthetic_window(n_kf=5, n_tracks=150, noise_px=0.5, outliers=0.0, seed=9)
    w = sw.window
    pts = w.points.copy()
    behind = 3  # put one point behind the cameras that see it
    c = w.poses[w.obs_keyframe[w.obs_point == behind][0], :3, 3]
    pts[behind] = c - (pts[behind] - c)
    pts[4] = np.nan  # a broken triangulation
    # A point seen only once (append one observation of a new point).
    pts = np.vstack([pts, pts[5]])
    kf = np.append(w.obs_keyframe, 0)
    pi = np.append(w.obs_point, len(pts) - 1)
    uv = np.vstack([w.obs_uv, w.obs_uv[np.flatnonzero(w.obs_point == 5)[0]]])
    r = ba.adjust(dataclasses.replace(w, points=pts, obs_keyframe=kf, obs_point=pi, obs_uv=uv))
    assert r.ok, r.reason
    assert not r.point_used[[behind, 4, len(pts) - 1]].any() and r.point_used.sum() == len(pts) - 3
    assert np.isnan(r.points[4]).all() and np.array_equal(r.points[behind], pts[behind])
    assert np.isnan(r.errors_px[pi == behind]).all() and not r.inliers[pi == behind].any()
    # A middle keyframe with too few points is held at its input pose, the rest still adjusts.
    keep = (w.obs_keyframe != 2) | (np.arange(len(w.obs_point)) % 40 == 0)
    r = ba.adjust(dataclasses.replace(w, obs_keyframe=w.obs_keyframe[keep], obs_point=w.obs_point[keep],
                                      obs_uv=w.obs_uv[keep]))
    assert r.ok, r.reason
    assert r.held.tolist() == [True, False, True, False, False]
    assert np.array_equal(r.poses[2], w.poses[2]) and not np.array_equal(r.poses[3], w.poses[3])


def _assert_failed(r, reason, w):
    assert not r.ok and r.reason.startswith(reason), r.reason
    assert np.array_equal(r.poses, np.asarray(w.poses)) and r.covariance is None


def test_degenerate_windows_give_a_reason_not_an_exception():
    sw = synthetic_window(n_kf=5, n_tracks=150, noise_px=0.5, outliers=0.0, seed=10)
    w = sw.window
    one = dataclasses.replace(w, poses=w.poses[:1], obs_keyframe=np.zeros(0, int), obs_point=np.zeros(0, int),
                              obs_uv=np.zeros((0, 2)))
    _assert_failed(ba.adjust(one), ba.REASON_FEW_KEYFRAMES, one)
    # No point seen by two keyframes: keep each point's first observation only.
    _, first = np.unique(w.obs_point, return_index=True)
    single = dataclasses.replace(w, obs_keyframe=w.obs_keyframe[first], obs_point=w.obs_point[first],
                                 obs_uv=w.obs_uv[first])
    _assert_failed(ba.adjust(single), ba.REASON_FEW_POINTS, single)
    # All points at infinity: no ray angle anywhere.
    rays = w.points - w.poses[0, :3, 3]
    far = dataclasses.replace(w, points=w.poses[0, :3, 3] + 1e9 * rays / np.linalg.norm(rays, axis=1)[:, None])
    _assert_failed(ba.adjust(far), ba.REASON_NO_PARALLAX, far)
    # Standing still: every keyframe at the same place (the pixels of a pure rotation).
    still_poses = w.poses.copy()
    still_poses[:, :3, 3] = w.poses[0, :3, 3]
    still = dataclasses.replace(w, poses=still_poses)
    _assert_failed(ba.adjust(still), ba.REASON_NO_PARALLAX, still)
    # Zero baseline between the two oldest keyframes only: the scale gauge is undefined.
    zero_poses = w.poses.copy()
    zero_poses[1] = w.poses[0]
    zero = dataclasses.replace(w, poses=zero_poses)
    _assert_failed(ba.adjust(zero), ba.REASON_ZERO_BASELINE, zero)
    # The newest keyframe sees nothing.
    keep = w.obs_keyframe != 4
    blind = dataclasses.replace(w, obs_keyframe=w.obs_keyframe[keep], obs_point=w.obs_point[keep],
                                obs_uv=w.obs_uv[keep])
    _assert_failed(ba.adjust(blind), ba.REASON_NEWEST_UNOBSERVED, blind)
    bad = dataclasses.replace(w, poses=np.where(np.arange(16).reshape(4, 4) == 3, np.nan, w.poses))
    r = ba.adjust(bad)
    assert not r.ok and r.reason.startswith(ba.REASON_BAD_INPUT)
    r = ba.adjust(dataclasses.replace(w, obs_point=w.obs_point[:-1]))
    assert not r.ok and r.reason.startswith(ba.REASON_BAD_INPUT)
    r = ba.adjust(w, ba.BundleConfig(loss="tukey"))
    assert not r.ok and "unknown loss" in r.reason


def _keyframe_window(sw, max_points):
    """A `KeyframeWindow` holding ``sw``'s keyframes, observations (track id = point index) and initial points."""
    from lightglue_ros.odometry.window import KeyframeWindow, WindowKeyframe

    w = sw.window
    win = KeyframeWindow(len(w.poses), max_points)
    for k, T in enumerate(w.poses):
        mine = w.obs_keyframe == k
        win.keyframes.append(WindowKeyframe(T.copy(), np.eye(6), dict(zip(w.obs_point[mine].tolist(), w.obs_uv[mine]))))
    win.points = {j: X.copy() for j, X in enumerate(w.points)}
    return win


def test_a_capped_window_spreads_its_points_over_the_image_most_observed_first():
    from lightglue_ros.odometry.window import SPREAD_GRID, _spread

    rng = np.random.default_rng(0)
    size = (640, 480)
    # 900 points crowd one corner cell, 300 are spread over the image: a cap of 150 must not spend itself on the
    # corner (taking the most observed, or the first ids, would).
    uv = np.vstack([rng.uniform([0, 0], [70, 70], (900, 2)), rng.uniform([0, 0], size, (300, 2))])
    count = np.r_[np.full(900, 9), rng.integers(2, 6, 300)]
    ids = np.arange(1200) * 3 + 7
    kept = _spread(ids, count, uv, size, 150)
    assert len(kept) == 150 and np.all(np.diff(kept) > 0) and np.isin(kept, ids).all()
    k = np.isin(ids, kept)
    cell = (uv // (np.array(size) / SPREAD_GRID)).astype(int) @ [SPREAD_GRID[1], 1]
    assert len(set(cell[k].tolist())) == len(set(cell.tolist())) == SPREAD_GRID[0] * SPREAD_GRID[1]
    assert k[:900].sum() < 15  # the crowded cell gets its share, not the cap
    for c in set(cell.tolist()):  # within a cell, no point left out is seen by more keyframes than one kept
        inside = cell == c
        if (inside & ~k).any():
            assert count[inside & k].min() >= count[inside & ~k].max()
    assert np.array_equal(_spread(ids, count, uv, size, 5000), ids)


def test_a_capped_window_adjusts_as_well_with_fewer_points():
    sw = synthetic_window(n_kf=7, n_tracks=1200, noise_px=0.7, outliers=0.05, seed=11)
    before = pose_errors(sw.window.poses, sw.true_poses)
    results = {}
    for cap in (0, 400):
        win = _keyframe_window(sw, cap)
        window, ids = win.build(sw.window.K, KITTI_SIZE)
        res, why = win.adjust(sw.window.K, KITTI_SIZE)
        assert why == "" and res.ok
        assert len(ids) == (1200 if cap == 0 else 400)
        results[cap] = pose_errors(np.stack([kf.pose for kf in win.keyframes]), sw.true_poses), len(window.obs_uv)
    (full, n_full), (capped, n_capped) = results[0], results[400]
    assert n_capped < 0.5 * n_full  # the adjustment's cost goes with its observations
    # A third of the points: the errors (mean centre, metres; mean rotation, degrees) stay a small fraction of the
    # start's and within ~sqrt(3) of the full window's (measured 4.7 against 3.7 mm, 0.023 against 0.012 deg).
    assert capped[0] < 0.15 * before[0] and capped[0] < 2.0 * full[0]
    assert capped[1] < 0.15 * before[1] and capped[1] < 2.5 * full[1]
