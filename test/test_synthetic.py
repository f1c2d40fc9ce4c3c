"""The synthetic scene: deterministic, geometrically exact (depth + poses give true correspondences), fast,
textured enough for ORB/SIFT, and every motion does what it says."""
import time

import cv2
import numpy as np
import pytest

from lightglue_ros.io.synthetic import (SHAKE_YAW_DEG, SyntheticConfig, make_scene, project_correspondences,
                                        render, render_frame, synthetic_camera, trajectory)


def _angle_deg(Ta, Tb):
    R = Ta[:3, :3].T @ Tb[:3, :3]
    return np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))


def _frames(cfg, *indices):
    poses = trajectory(cfg)
    return [render_frame(cfg, i, poses[i]) for i in indices]


@pytest.fixture(scope="module")
def orbit():
    cfg = SyntheticConfig(width=320, height=240)
    return cfg, _frames(cfg, 0, 4)


def test_same_seed_same_bytes_other_seed_differs():
    cam = synthetic_camera(160, 120)
    T = trajectory(SyntheticConfig(frames=6))[5]
    rgb1, d1 = render(make_scene(0), T, cam)
    rgb2, d2 = render(make_scene.__wrapped__(0), T, cam)  # rebuilt, not the cached scene
    assert rgb1.tobytes() == rgb2.tobytes() and d1.tobytes() == d2.tobytes()
    rgb3, _ = render(make_scene.__wrapped__(1), T, cam)
    assert rgb3.tobytes() != rgb1.tobytes()


def test_frame_records(orbit):
    cfg, (f0, f4) = orbit
    assert f0.image.shape == (240, 320, 3) and f0.image.dtype == np.uint8
    assert f0.depth.shape == (240, 320) and f0.depth.dtype == np.float32
    assert np.all(f0.depth > 0.5) and np.all(f0.depth < 12)  # a closed room: every pixel hits a surface
    np.testing.assert_array_equal(f0.gt_pose, np.eye(4))
    assert f4.stamp == pytest.approx(0.4) and f4.index == 4
    assert f0.camera.model == "none" and f0.camera.fx == f0.camera.fy
    assert render_frame(SyntheticConfig(depth=False, width=64, height=48), 0, np.eye(4)).depth is None


def test_depth_and_poses_give_exact_correspondences(orbit):
    """Back-project with a's depth and pose, re-project into b: b's own depth and colour agree there."""
    _, (fa, fb) = orbit
    rng = np.random.default_rng(0)
    pts_a = rng.uniform([0, 0], [319, 239], (2000, 2))
    pts_b, valid = project_correspondences(fa, fb, pts_a)
    assert valid.mean() > 0.6
    # geometry: the world point seen by b at pts_b (from b's depth) is the one a saw
    Ka, Kb = fa.camera.K, fb.camera.K
    za = np.array([fa.depth[int(round(y)), int(round(x))] for x, y in pts_a[valid]])
    ua = np.round(pts_a[valid])
    Xa = (np.c_[ua, np.ones(len(ua))] @ np.linalg.inv(Ka).T) * za[:, None]
    Xw_a = Xa @ fa.gt_pose[:3, :3].T + fa.gt_pose[:3, 3]
    ub = np.round(pts_b[valid]).astype(int)
    zb = fb.depth[ub[:, 1], ub[:, 0]]
    Xb = (np.c_[ub, np.ones(len(ub))] @ np.linalg.inv(Kb).T) * zb[:, None]
    Xw_b = Xb @ fb.gt_pose[:3, :3].T + fb.gt_pose[:3, 3]
    dist = np.linalg.norm(Xw_a - Xw_b, axis=1)
    assert np.median(dist) < 0.01  # rounding to whole pixels: mm at 2-6 m
    # photometry: the same texture is seen at both places
    ga = cv2.cvtColor(fa.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gb = cv2.cvtColor(fb.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    pa, pb = pts_a[valid].astype(np.float32), pts_b[valid].astype(np.float32)
    va = cv2.remap(ga, pa[:, :1], pa[:, 1:], cv2.INTER_LINEAR)[:, 0]
    vb = cv2.remap(gb, pb[:, :1], pb[:, 1:], cv2.INTER_LINEAR)[:, 0]
    assert np.median(np.abs(va - vb)) < 8
    assert np.all(np.isnan(pts_b[~valid]))


def test_occluded_and_out_of_view_points_are_invalid():
    cfg = SyntheticConfig(width=160, height=120, motion="shake", frames=10)
    poses = trajectory(cfg)
    fa, fb = render_frame(cfg, 4, poses[4]), render_frame(cfg, 6, poses[6])  # 120 deg apart
    grid = np.stack(np.meshgrid(np.arange(0, 160, 2), np.arange(0, 120, 2)), -1).reshape(-1, 2).astype(float)
    _, valid = project_correspondences(fa, fb, grid)
    assert valid.mean() < 0.05
    _, valid = project_correspondences(fa, fa, grid)
    assert valid.mean() > 0.7  # the same frame: all but 2-pixel bands at edges and creases (many at 160x120)
    # sideways by 0.6 m: boxes now hide parts of the walls a saw; those must be invalid
    scene, cam = make_scene(0), synthetic_camera(160, 120)
    Tb = np.eye(4)
    Tb[0, 3] = 0.6
    fa, fb = (render_frame(SyntheticConfig(width=160, height=120), 0, T, scene) for T in (np.eye(4), Tb))
    _, valid = project_correspondences(fa, fb, grid)
    depth_a = fa.depth[grid[:, 1].astype(int), grid[:, 0].astype(int)]
    Xa = (np.c_[grid, np.ones(len(grid))] @ np.linalg.inv(cam.K).T) * depth_a[:, None]
    Xb = Xa - Tb[:3, 3]
    uv = np.round((Xb @ cam.K.T)[:, :2] / Xb[:, 2:]).astype(int)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < 160) & (uv[:, 1] >= 0) & (uv[:, 1] < 120)
    seen = np.full(len(grid), np.inf)
    seen[inside] = fb.depth[uv[inside, 1], uv[inside, 0]]
    occluded = inside & (seen < 0.9 * Xb[:, 2])
    assert occluded.sum() > 20 and not valid[occluded].any()
    assert valid[inside & ~occluded].mean() > 0.65  # the rest: edge / crease bands of a and b


def test_motions():
    n = 12
    orbit = trajectory(SyntheticConfig(frames=n))
    steps = [np.linalg.norm(orbit[i + 1][:3, 3] - orbit[i][:3, 3]) for i in range(n - 1)]
    assert 0.02 < np.mean(steps) <= 0.051 and max(_angle_deg(orbit[i], orbit[i + 1]) for i in range(n - 1)) < 5
    assert _angle_deg(orbit[0], orbit[-1]) > 2  # rotation as well as translation

    fwd = trajectory(SyntheticConfig(frames=n, motion="forward"))
    assert fwd[-1][2, 3] == pytest.approx(0.05 * (n - 1))

    rot = trajectory(SyntheticConfig(frames=n, motion="rotate"))
    assert all(np.allclose(T[:3, 3], 0) for T in rot)
    assert all(0.3 < _angle_deg(rot[i], rot[i + 1]) < 5 for i in range(n - 1))

    static = trajectory(SyntheticConfig(frames=3, motion="static"))
    assert all(np.array_equal(T, np.eye(4)) for T in static)

    for T in orbit + fwd + rot:
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)


def test_shake_is_fast_rotation_then_back():
    cfg = SyntheticConfig(frames=20, motion="shake", shake_at=8)
    shake, steady = trajectory(cfg), trajectory(SyntheticConfig(frames=20))
    jumps = [_angle_deg(shake[i], shake[i + 1]) for i in range(19)]
    fast = [i for i, a in enumerate(jumps) if a > 45]
    assert fast == list(range(7, 8 + len(SHAKE_YAW_DEG)))  # into, through and out of the shake
    for i in list(range(8)) + list(range(8 + len(SHAKE_YAW_DEG), 20)):
        np.testing.assert_allclose(shake[i], steady[i], atol=1e-12)


def test_static_images_identical_unless_noise():
    cfg = SyntheticConfig(frames=3, motion="static", width=96, height=72, depth=False)
    a, b = _frames(cfg, 0, 2)
    assert a.image.tobytes() == b.image.tobytes()
    noisy = SyntheticConfig(frames=3, motion="static", width=96, height=72, noise=2.0)
    na, nb = _frames(noisy, 0, 2)
    assert na.image.tobytes() != nb.image.tobytes() and np.abs(na.image.astype(int) - a.image).mean() < 3
    assert _frames(noisy, 2)[0].image.tobytes() == nb.image.tobytes()  # noise is seeded too


def test_rich_repeatable_features():
    """ORB finds > 500 keypoints per 640x480 frame, and its matches between frames agree with the GT."""
    cfg = SyntheticConfig()
    fa, fb = _frames(cfg, 10, 12)
    orb = cv2.ORB_create(nfeatures=2000)
    ka, da = orb.detectAndCompute(cv2.cvtColor(fa.image, cv2.COLOR_RGB2GRAY), None)
    kb, db = orb.detectAndCompute(cv2.cvtColor(fb.image, cv2.COLOR_RGB2GRAY), None)
    assert len(ka) > 500 and len(kb) > 500
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    pa = np.array([ka[m.queryIdx].pt for m in matches])
    pb = np.array([kb[m.trainIdx].pt for m in matches])
    gt_b, valid = project_correspondences(fa, fb, pa)
    err = np.linalg.norm(gt_b[valid] - pb[valid], axis=1)
    assert (err < 3).sum() > 300
    if hasattr(cv2, "SIFT_create"):
        assert len(cv2.SIFT_create().detect(cv2.cvtColor(fa.image, cv2.COLOR_RGB2GRAY), None)) > 500


def test_render_speed():
    """Target ~10 ms (640x480) and ~5 ms (320x240) per frame; the best of 10 is checked with slack, since other
    processes share the cores and inflate the median."""
    scene = make_scene(0)
    poses = trajectory(SyntheticConfig(frames=10))
    for (w, h), budget_ms in (((640, 480), 60), ((320, 240), 30)):
        cam = synthetic_camera(w, h)
        times = []
        for T in poses:
            t0 = time.perf_counter()
            render(scene, T, cam)
            times.append(1000 * (time.perf_counter() - t0))
        print(f"render {w}x{h}: best {min(times):.1f} ms, median {np.median(times):.1f} ms")
        assert min(times) < budget_ms
