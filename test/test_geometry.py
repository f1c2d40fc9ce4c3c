"""Geometry on exact synthetic correspondences: camera model, undistortion, relative/metric pose, depth, covariance."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from lightglue_ros.core.lie import invert_T, make_T, transform
from lightglue_ros import geometry as geo
from lightglue_ros.core.types import Camera

CAM = Camera.pinhole(640, 480, 500.0, 500.0, 320.0, 240.0)
PROPS = settings(max_examples=25, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])


def scene(n=300, seed=0, rotvec=(0.02, -0.05, 0.01), t_1_0=(0.3, 0.05, 0.1), noise=0.5, outliers=0.0):
    """Points in frame 0, pixels in both frames (+noise, + a fraction of random outlier pixels in frame 1)."""
    rng = np.random.default_rng(seed)
    X0 = rng.uniform([-4, -3, 4], [4, 3, 12], (n, 3))
    T_1_0 = make_T(Rotation.from_rotvec(rotvec).as_matrix(), np.asarray(t_1_0, float))
    p0 = geo.project(CAM.K, X0) + rng.normal(0, noise, (n, 2))
    p1 = geo.project(CAM.K, transform(T_1_0, X0)) + rng.normal(0, noise, (n, 2))
    bad = rng.random(n) < outliers
    p1[bad] = rng.uniform([0, 0], [640, 480], (int(bad.sum()), 2))
    return X0, p0, p1, T_1_0, bad


def rot_err_deg(Ra, Rb):
    return float(np.degrees(Rotation.from_matrix(Ra.T @ Rb).magnitude()))


def angle_deg(a, b):
    c = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(c, -1, 1))))


# ---------------------------------------------------------------------------------------------------------------
# Camera model
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model,D", [("none", []), ("plumb_bob", [0.1, -0.05, 0.001, 0.001, 0.01]),
                                     ("radtan", [0.1, -0.05, 0.001, 0.001]), ("fisheye", [0.1, 0.01, 0, 0]),
                                     ("equidistant", [0.1, 0.01, 0.0, 0.0]), ("rational_polynomial", [0.1] * 8),
                                     ("plumb_bob", [])])
def test_valid_cameras(model, D):
    assert geo.validate_camera(geo.camera_from_info(640, 480, [500, 0, 320, 0, 500, 240, 0, 0, 1], D, model)) == ""


@pytest.mark.parametrize("K,size,D,model,word", [
    ([0, 0, 320, 0, 500, 240, 0, 0, 1], (640, 480), [], "none", "focal"),
    ([-500, 0, 320, 0, 500, 240, 0, 0, 1], (640, 480), [], "none", "focal"),
    ([np.nan, 0, 320, 0, 500, 240, 0, 0, 1], (640, 480), [], "none", "non-finite"),
    ([500, 0, 320, 0, 500, 240, 0, 0, 1], (0, 480), [], "none", "size"),
    ([500, 0, 320, 0, 500, 240, 0, 0, 1], (640, 480), [0.1] * 4, "kannala", "unknown"),
    ([500, 0, 320, 0, 500, 240, 0, 0, 1], (640, 480), [0.1] * 3, "plumb_bob", "coefficients"),
    ([500, 0, 320, 0, 500, 240, 0, 0, 1], (640, 480), [0.1] * 5, "equidistant", "coefficients"),
    ([500, 0, 320, 0, 500, 240, 0, 0, 1], (640, 480), [0.1] * 4, "none", "non-zero"),
    ([500, 0, 320, 0, 500, 240, 0, 1, 1], (640, 480), [], "none", "last row"),
])
def test_invalid_cameras_give_a_reason(K, size, D, model, word):
    reason = geo.validate_camera(geo.camera_from_info(size[0], size[1], K, D, model))
    assert word in reason


def test_camera_from_info_reads_row_major_K_and_blank_model():
    cam = geo.camera_from_info(752, 480, [458.654, 0, 367.215, 0, 457.296, 248.375, 0, 0, 1], [], "")
    assert cam.model == "none" and cam.fx == 458.654 and cam.cy == 248.375 and cam.K.shape == (3, 3)


def _grid(n=15):
    xs, ys = np.meshgrid(np.linspace(-0.6, 0.6, n), np.linspace(-0.45, 0.45, n))
    return np.stack([xs.ravel(), ys.ravel(), np.ones(n * n)], axis=1)


@pytest.mark.parametrize("model,D", [
    ("plumb_bob", [-0.28, 0.07, 0.0002, 0.00002, 0.0]),  # EuRoC-like radial-tangential + k3
    ("radtan", [-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05]),  # EuRoC cam0 (4 coefficients)
    ("rational_polynomial", [0.3, 0.1, 0.001, 0.001, 0.02, 0.05, 0.02, 0.01]),
    ("equidistant", [0.05, -0.01, 0.003, -0.001]),
])
def test_undistortion_round_trip(model, D):
    cam = geo.camera_from_info(640, 480, [400, 0, 320, 0, 400, 240, 0, 0, 1], D, model)
    rays = _grid()
    ideal = geo.project(cam.K, rays)
    obj = rays.reshape(-1, 1, 3)
    if model == "equidistant":
        distorted, _ = cv2.fisheye.projectPoints(obj, np.zeros(3), np.zeros(3), cam.K, cam.D)
    else:
        distorted, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), cam.K, cam.D)
    distorted = distorted.reshape(-1, 2)
    assert np.abs(distorted - ideal).max() > 5.0  # the lens really bends these points
    back = geo.undistort_points(cam, distorted)
    assert np.abs(back - ideal).max() < 1e-3


def test_undistort_without_distortion_is_identity():
    pts = np.random.default_rng(0).uniform(0, 600, (50, 2)).astype(np.float32)
    assert np.array_equal(geo.undistort_points(CAM, pts), pts.astype(np.float64))
    assert geo.undistort_points(CAM, np.zeros((0, 2))).shape == (0, 2)


# ---------------------------------------------------------------------------------------------------------------
# Relative pose (monocular)
# ---------------------------------------------------------------------------------------------------------------


def test_relative_pose_recovers_motion_with_outliers():
    X0, p0, p1, T_1_0, bad = scene(n=400, outliers=0.3, seed=1)
    rp = geo.relative_pose(p0, p1, CAM, CAM)
    assert rp.ok, rp.reason
    T_0_1 = invert_T(T_1_0)
    assert rot_err_deg(rp.R, T_0_1[:3, :3]) < 0.3
    assert angle_deg(rp.t, T_0_1[:3, 3]) < 3.0
    assert np.linalg.norm(rp.t) == pytest.approx(1.0)
    assert np.allclose(rp.T_0_1, make_T(rp.R, rp.t)) and np.allclose(rp.T_1_0 @ rp.T_0_1, np.eye(4))
    # Inliers are the true correspondences, nearly all of them.
    assert rp.inliers.shape == (400,) and rp.num_inliers == int(rp.inliers.sum())
    assert (rp.inliers & bad).sum() <= 3 and (rp.inliers & ~bad).sum() > 0.9 * (~bad).sum()
    assert rp.parallax_px > 1.0 and rp.trans_parallax_px > 1.0


def test_relative_pose_covariance_is_spd_and_shrinks_with_more_inliers():
    covs = []
    for n in (40, 160, 640):
        _, p0, p1, _, _ = scene(n=n, seed=2)
        rp = geo.relative_pose(p0, p1, CAM, CAM)
        assert rp.ok
        C = rp.covariance
        assert C.shape == (6, 6) and np.allclose(C, C.T) and np.all(np.linalg.eigvalsh(C) > 0)
        covs.append(np.trace(C))
    assert covs[0] > covs[1] > covs[2]


def test_pose_covariance_shrinks_with_better_inliers():
    X0, _, _, T_1_0, _ = scene(n=200, seed=3, noise=0.0)
    T_0_1 = invert_T(T_1_0)
    rng = np.random.default_rng(0)
    clean = geo.project(CAM.K, transform(T_1_0, X0))
    traces = []
    for sigma in (2.0, 0.5):
        C, s = geo.pose_covariance(X0, clean + rng.normal(0, sigma, clean.shape), T_0_1, CAM.K)
        assert s == pytest.approx(sigma, rel=0.2)
        assert np.all(np.linalg.eigvalsh(C) > 0)
        traces.append(np.trace(C))
    assert traces[0] > 10 * traces[1]
    # Exact data still gives an SPD matrix (sigma floored).
    C, s = geo.pose_covariance(X0, clean, T_0_1, CAM.K)
    assert s == pytest.approx(0.1) and np.all(np.linalg.eigvalsh(C) > 0)


def test_pure_rotation_is_reported_with_its_rotation():
    _, p0, p1, T_1_0, _ = scene(t_1_0=(0, 0, 0), rotvec=(0.01, 0.08, -0.02), seed=4)
    rp = geo.relative_pose(p0, p1, CAM, CAM)
    assert not rp.ok and rp.reason == geo.REASON_ROTATION
    assert rot_err_deg(rp.R, T_1_0[:3, :3].T) < 0.1
    assert np.all(rp.t == 0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rotation_with_a_little_translation_reports_the_essential_rotation(seed):
    # 3 cm sideways: too little flow to call it translation (< rotation_px), but far above the 0.1 px noise. The
    # rotation-only fit turns that sideways flow into ~0.2 deg of extra rotation; E's rotation models it.
    _, p0, p1, T_1_0, _ = scene(t_1_0=(0.03, 0, 0), rotvec=(0.01, 0.08, -0.02), seed=seed, noise=0.1)
    rp = geo.relative_pose(p0, p1, CAM, CAM)
    assert rp.reason == geo.REASON_ROTATION and np.all(rp.t == 0)
    assert rot_err_deg(geo.fit_rotation(CAM.K, CAM.K, p0, p1).T, T_1_0[:3, :3].T) > 0.15
    assert rot_err_deg(rp.R, T_1_0[:3, :3].T) < 0.05


def test_no_motion_is_no_parallax():
    _, p0, p1, _, _ = scene(t_1_0=(0, 0, 0), rotvec=(0, 0, 0), seed=5, noise=0.3)
    rp = geo.relative_pose(p0, p1, CAM, CAM)
    assert not rp.ok and rp.reason == geo.REASON_NO_PARALLAX


@pytest.mark.parametrize("case", ["few", "nan", "inf", "length", "empty", "random", "duplicate", "collinear"])
def test_degenerate_inputs_give_a_reason(case):
    rng = np.random.default_rng(6)
    _, p0, p1, _, _ = scene(n=100, seed=6)
    if case == "few":
        p0, p1 = p0[:10], p1[:10]
    elif case == "nan":
        p1[3, 0] = np.nan
    elif case == "inf":
        p0[0, 1] = np.inf
    elif case == "length":
        p1 = p1[:-1]
    elif case == "empty":
        p0 = p1 = np.zeros((0, 2))
    elif case == "random":
        p1 = rng.uniform(0, 480, p1.shape)
    elif case == "duplicate":
        p0 = np.repeat(p0[:1], 100, axis=0)
        p1 = np.repeat(p1[:1], 100, axis=0)
    elif case == "collinear":
        p0 = np.stack([np.linspace(0, 600, 100), np.full(100, 200.0)], axis=1)
        p1 = p0 + [5.0, 0.0]
    rp = geo.relative_pose(p0, p1, CAM, CAM)
    assert not rp.ok and rp.reason
    expected = {"few": geo.REASON_FEW_MATCHES, "nan": geo.REASON_NAN, "inf": geo.REASON_NAN,
                "empty": geo.REASON_FEW_MATCHES}
    if case in expected:
        assert rp.reason == expected[case]


# ---------------------------------------------------------------------------------------------------------------
# RGB-D
# ---------------------------------------------------------------------------------------------------------------


def depth_plane(z=3.0, shape=(480, 640)):
    return np.full(shape, z, np.float32)


def test_lift_nearest_exact_and_rejections():
    depth = depth_plane(4.0)
    depth[10, 20] = 0.0
    depth[11, 20] = np.nan
    depth[12, 20] = 0.05  # below min_depth
    depth[13, 20] = 50.0  # beyond max_depth
    pts = np.array([[320, 240], [100, 50], [20, 10], [20, 11], [20, 12], [20, 13], [-5, 3], [700, 10],
                    [np.nan, 1]], float)
    lifted = geo.lift_keypoints(pts, depth, CAM, 0.1, 20.0)
    assert lifted.reason == ""
    assert lifted.valid.tolist() == [True, True] + [False] * 7
    assert np.allclose(lifted.xyz[0], [0, 0, 4.0])
    assert np.allclose(lifted.xyz[1], [(100 - 320) / 500 * 4, (50 - 240) / 500 * 4, 4.0])
    assert np.all(np.isnan(lifted.xyz[~lifted.valid]))


def test_lift_accepts_uint16_millimetres():
    depth = np.full((480, 640), 2500, np.uint16)
    lifted = geo.lift_keypoints(np.array([[320.0, 240.0]]), depth, CAM)
    assert lifted.valid[0] and lifted.xyz[0, 2] == pytest.approx(2.5)


@pytest.mark.parametrize("depth", [np.zeros((240, 320), np.float32), np.zeros((480, 641), np.float32),
                                   np.zeros((480, 640, 3), np.float32), None])
def test_lift_wrong_size_is_a_reason(depth):
    lifted = geo.lift_keypoints(np.array([[320.0, 240.0]]), depth, CAM)
    assert lifted.reason and not lifted.valid.any()


def test_lift_bilinear_interpolates_and_rejects_depth_edges():
    ys, xs = np.mgrid[0:480, 0:640]
    depth = (2.0 + 0.001 * xs).astype(np.float32)  # a smooth slope
    depth[:, 400:] = 6.0  # a depth edge at x = 399.5
    pts = np.array([[100.5, 100.25], [399.5, 100.0], [398.2, 50.0], [401.0, 60.0]])
    lifted = geo.lift_keypoints(pts, depth, CAM, interpolation="bilinear")
    assert lifted.valid.tolist() == [True, False, True, True]
    assert lifted.xyz[0, 2] == pytest.approx(2.0 + 0.001 * 100.5, abs=1e-5)
    depth[200, 200] = 0.0  # one invalid neighbour invalidates the bilinear sample
    assert not geo.lift_keypoints(np.array([[199.5, 199.5]]), depth, CAM, interpolation="bilinear").valid[0]
    assert geo.lift_keypoints(pts, depth, CAM, interpolation="cubic").reason


def test_lift_uses_undistorted_rays():
    cam = geo.camera_from_info(640, 480, [500, 0, 320, 0, 500, 240, 0, 0, 1], [-0.2, 0.05, 0, 0, 0], "plumb_bob")
    raw = np.array([[600.0, 400.0]])
    lifted = geo.lift_keypoints(raw, depth_plane(2.0), cam)
    und = geo.undistort_points(cam, raw)
    assert np.allclose(lifted.xyz[0], geo.bearings(cam.K, und)[0] * 2.0)


def test_metric_pose_exact_with_outliers():
    X0, p0, p1, T_1_0, bad = scene(n=300, noise=0.0, outliers=0.3, seed=7)
    mp = geo.metric_pose(X0, p1, CAM, pts_ref=p0)
    assert mp.ok and mp.metric
    assert np.allclose(mp.T_0_1, invert_T(T_1_0), atol=1e-6)
    assert not (mp.inliers & bad).any() and mp.inliers[~bad].all()
    assert np.all(np.linalg.eigvalsh(mp.covariance) > 0)


def test_metric_pose_from_lifted_depth_is_metric():
    rng = np.random.default_rng(8)
    px0 = rng.uniform([20, 20], [620, 460], (200, 2))
    depth0 = depth_plane(3.0)
    lifted = geo.lift_keypoints(px0, depth0, CAM)
    T_1_0 = make_T(Rotation.from_rotvec([0.0, 0.03, 0.0]).as_matrix(), np.array([-0.12, 0.0, 0.05]))
    p1 = geo.project(CAM.K, transform(T_1_0, lifted.xyz))
    mp = geo.metric_pose(lifted.xyz, p1, CAM, pts_ref=px0)
    assert mp.ok
    assert np.linalg.norm(mp.t) == pytest.approx(np.linalg.norm(T_1_0[:3, 3]), rel=1e-6)


def test_metric_pose_failures_are_reasons():
    X0, p0, p1, T_1_0, _ = scene(n=100, noise=0.0, seed=9)
    X0[20:] = np.nan  # only 20 points with depth
    assert geo.metric_pose(X0[:10], p1[:10], CAM).reason == geo.REASON_FEW_DEPTH
    assert geo.metric_pose(np.full((100, 3), np.nan), p1, CAM).reason == geo.REASON_FEW_DEPTH
    assert geo.metric_pose(X0, p1[:-1], CAM).reason
    still = geo.metric_pose(X0[:20], p0[:20], CAM, pts_ref=p0[:20])
    assert still.reason == geo.REASON_NO_PARALLAX


# ---------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------

rotvecs = st.tuples(*[st.floats(-0.15, 0.15)] * 3)
directions = st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda v: np.linalg.norm(v) > 0.3)


@PROPS
@given(rotvec=rotvecs, direction=directions, length=st.floats(0.3, 1.0), seed=st.integers(0, 10_000),
       outliers=st.floats(0.0, 0.4))
def test_property_relative_pose_recovered(rotvec, direction, length, seed, outliers):
    t = np.asarray(direction) / np.linalg.norm(direction) * length
    X0, p0, p1, T_1_0, bad = scene(n=300, rotvec=rotvec, t_1_0=t, noise=0.5, outliers=outliers, seed=seed)
    # Only correspondences visible in both images (a real matcher could not see the others).
    X1 = transform(T_1_0, X0)
    vis = (X1[:, 2] > 0.5) & np.all((p1 > 0) & (p1 < [640, 480]), axis=1)
    rp = geo.relative_pose(p0[vis], p1[vis], CAM, CAM)
    assert rp.ok, rp.reason
    T_0_1 = invert_T(T_1_0)
    assert rot_err_deg(rp.R, T_0_1[:3, :3]) < 0.5
    assert angle_deg(rp.t, T_0_1[:3, 3]) < 5.0
    assert np.all(np.linalg.eigvalsh(rp.covariance) > 0)


@PROPS
@given(rotvec=rotvecs, seed=st.integers(0, 10_000), shift=st.floats(0, 0.001))
def test_property_rotation_or_static_is_a_reason(rotvec, seed, shift):
    _, p0, p1, T_1_0, _ = scene(n=200, rotvec=rotvec, t_1_0=(shift, 0, 0), noise=0.3, seed=seed)
    rp = geo.relative_pose(p0, p1, CAM, CAM)
    assert not rp.ok and rp.reason in (geo.REASON_ROTATION, geo.REASON_NO_PARALLAX)
    if rp.reason == geo.REASON_ROTATION:
        assert rot_err_deg(rp.R, T_1_0[:3, :3].T) < 0.2


finite_or_not = st.one_of(st.floats(-1e4, 1e4), st.just(np.nan), st.just(np.inf))


@PROPS
@given(n=st.integers(0, 60), data=st.data())
def test_property_garbage_never_raises(n, data):
    vals = data.draw(st.lists(finite_or_not, min_size=4 * n, max_size=4 * n))
    arr = np.asarray(vals, float).reshape(n, 4) if n else np.zeros((0, 4))
    rp = geo.relative_pose(arr[:, :2], arr[:, 2:], CAM, CAM)
    assert isinstance(rp.ok, bool) and (rp.ok or rp.reason)
    xyz = np.concatenate([arr[:, :2], np.abs(arr[:, 2:3]) + 1], axis=1) if n else np.zeros((0, 3))
    mp = geo.metric_pose(xyz, arr[:, 2:], CAM, pts_ref=arr[:, :2])
    assert mp.ok or mp.reason
    lifted = geo.lift_keypoints(arr[:, :2], depth_plane(2.0), CAM, interpolation="bilinear")
    assert lifted.xyz.shape == (n, 3) and lifted.valid.shape == (n,)
