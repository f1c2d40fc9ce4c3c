"""Pipeline: exactly one outcome per frame, resets, timings; synthetic front end and real data (ORB / SIFT)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import data_dir
from test_odometry import FakeFrontEnd, SyntheticWorld, path_length, sideways_trajectory

from lightglue_ros.core.lie import invert_T
from lightglue_ros.matching.frontend import FrontEndConfig
from lightglue_ros.odometry.odometry import OdometryConfig
from lightglue_ros.odometry.pipeline import Pipeline, PipelineConfig
from lightglue_ros.core.types import FAILED, INITIALIZING, LOST, OUTCOMES, PROCESSED, SKIPPED, TRACKING, Camera

IMAGE = np.zeros((480, 640), np.uint8)  # the fake front end ignores pixels; the pipeline still checks them


def fake_pipeline(n=60, use_depth=True, seed=0, **odo):
    world = SyntheticWorld(sideways_trajectory(n=n), seed=seed)
    fe = FakeFrontEnd(world)
    cfg = PipelineConfig(odometry=OdometryConfig(use_depth=use_depth, **odo))
    return Pipeline(cfg, frontend=fe), world, fe


def feed(p: Pipeline, world: SyntheticWorld, frames, use_depth=True, stamp=lambda i: 0.05 * i):
    return [p.process(IMAGE, world.cam, stamp(i), depth=world.depth_image(i) if use_depth else None)
            for i in frames]


def test_every_frame_one_outcome_and_accurate_track():
    p, world, fe = fake_pipeline(n=100)
    promoted = []
    fe.promote = lambda: (promoted.append(fe.last), FakeFrontEnd.promote(fe))
    outs = feed(p, world, range(100))
    assert all(o.outcome in OUTCOMES for o in outs)
    assert outs[0].outcome == PROCESSED and outs[0].reason == "first frame (reference)"
    assert outs[0].odometry.state == INITIALIZING
    assert all(o.outcome == PROCESSED for o in outs), {o.reason for o in outs}
    assert p.state == TRACKING
    assert np.linalg.norm(p.pose[:3, 3] - world.poses[99][:3, 3]) < 0.01 * path_length(
        np.array([T[:3, 3] for T in world.poses]))
    # The odometry's keyframes, and only those, were promoted (frame 0: the front end's own first reference).
    assert promoted[0] == 0 and len(promoted) > 1
    assert promoted[1:] == [k for k, o in enumerate(outs) if o.odometry.keyframe and k > 0]
    for o in outs:
        assert o.total_ms >= o.pose_ms >= 0 and o.stamp == o.odometry.stamp


def test_monocular_through_the_pipeline():
    p, world, _ = fake_pipeline(n=80, use_depth=False, seed=1)
    outs = feed(p, world, range(80), use_depth=False)
    assert all(o.outcome == PROCESSED for o in outs), {o.reason for o in outs}
    assert p.state == TRACKING and not outs[-1].odometry.metric


def test_default_frontend_is_caller_promoted():
    p = Pipeline(PipelineConfig(frontend=FrontEndConfig(backend="orb")))
    assert p.frontend.config.auto_promote is False
    assert p.state == INITIALIZING and np.array_equal(p.pose, np.eye(4))


@pytest.mark.parametrize("image,word", [(None, "bad image"), ("image", "bad image"),
                                        (np.zeros((0, 640), np.uint8), "bad image"),
                                        (np.zeros((480, 640, 2), np.uint8), "bad image"),
                                        (np.zeros((240, 320), np.uint8), "does not match camera_info")])
def test_bad_images_fail_with_a_reason(image, word):
    p, world, _ = fake_pipeline()
    o = p.process(image, world.cam, 0.0)
    assert o.outcome == FAILED and word in o.reason


def test_camera_problems():
    p, world, _ = fake_pipeline()
    o = p.process(IMAGE, None, 0.0)
    assert o.outcome == SKIPPED and o.reason == "no camera_info"
    bad = Camera(640, 480, np.array([[np.nan, 0, 320], [0, 500, 240], [0, 0, 1.0]]))
    o = p.process(IMAGE, bad, 0.0)
    assert o.outcome == FAILED and o.reason.startswith("invalid camera")
    o = p.process(IMAGE, world.cam, float("nan"))
    assert o.outcome == FAILED and o.reason == "bad stamp"


def test_depth_problems_fail_and_count_toward_loss():
    p, world, _ = fake_pipeline(lost_after=3)
    feed(p, world, range(10))
    outs = [p.process(IMAGE, world.cam, 0.05 * i, depth=np.zeros((10, 10), np.float32)) for i in range(10, 13)]
    assert all(o.outcome == FAILED and o.reason.startswith("depth wrong size") for o in outs)
    assert outs[-1].odometry.state == LOST


def test_time_jump_backwards_resets_without_moving_the_pose():
    p, world, fe = fake_pipeline()
    feed(p, world, range(20))
    pose = p.pose
    o = p.process(IMAGE, world.cam, 0.01, depth=world.depth_image(20))
    assert o.outcome == PROCESSED and o.reason.startswith("time jumped backwards")
    assert o.odometry.state == INITIALIZING and np.array_equal(o.odometry.pose, pose)
    # Tracking resumes from the held pose with the new stamps.
    outs = feed(p, world, range(21, 40), stamp=lambda i: 0.01 + 0.05 * (i - 20))
    assert outs[-1].odometry.state == TRACKING
    delta_est = invert_T(pose) @ p.pose
    delta_gt = invert_T(world.poses[20]) @ world.poses[39]
    assert np.linalg.norm(delta_est[:3, 3] - delta_gt[:3, 3]) < 0.03


def test_duplicate_stamp_is_skipped():
    p, world, _ = fake_pipeline()
    feed(p, world, range(3))
    o = p.process(IMAGE, world.cam, 0.1, depth=world.depth_image(3))
    assert o.outcome == SKIPPED and o.reason == "duplicate stamp"


def test_frame_size_change_resets():
    p, world, fe = fake_pipeline()
    feed(p, world, range(10))
    big = Camera.pinhole(1280, 960, 1000.0, 1000.0, 640.0, 480.0)
    o = p.process(np.zeros((960, 1280), np.uint8), big, 0.6)
    assert o.reason.startswith("frame size changed (640x480 -> 1280x960)")
    assert o.odometry.state == INITIALIZING


def test_lost_reset_policy_resets_the_frontend_and_recovers():
    p, world, fe = fake_pipeline(n=60, lost_after=3, lost_policy="reset")
    feed(p, world, range(20))
    fe.fail_frames = {20, 21, 22}
    outs = feed(p, world, range(20, 23))
    assert [o.outcome for o in outs] == [FAILED] * 3 and outs[-1].odometry.state == LOST
    assert fe.reference is None  # the pipeline reset the front end: the next frame seeds a new reference
    outs = feed(p, world, range(23, 60))
    assert outs[0].reason == "first frame (reference)" and outs[-1].odometry.state == TRACKING


class ExplodingFrontEnd(FakeFrontEnd):
    def track(self, image=None, mask=None, stamp=None, frame=None):
        if self.next_frame == 5:
            self.next_frame += 1
            raise RuntimeError("boom")
        return super().track(image, mask, stamp, frame)


def test_unexpected_exceptions_become_failed_outcomes():
    world = SyntheticWorld(sideways_trajectory(n=20), seed=3)
    p = Pipeline(PipelineConfig(odometry=OdometryConfig(use_depth=True)), frontend=ExplodingFrontEnd(world))
    outs = feed(p, world, range(20))
    assert outs[5].outcome == FAILED and outs[5].reason == "internal error: RuntimeError: boom"
    assert outs[-1].outcome == PROCESSED and outs[-1].odometry.state == TRACKING


def test_reset_keeps_pose():
    p, world, fe = fake_pipeline()
    feed(p, world, range(15))
    pose = p.pose
    p.reset("operator")
    assert p.state == INITIALIZING and np.array_equal(p.pose, pose) and fe.reference is None


# ---------------------------------------------------------------------------------------------------------------
# Real data
# ---------------------------------------------------------------------------------------------------------------


def test_euroc_static_camera_barely_moves_orb():
    from lightglue_ros.io.datasets import open_sequence

    seq = open_sequence(str(data_dir("euroc_v101_static")))
    p = Pipeline(PipelineConfig(frontend=FrontEndConfig(backend="orb")))
    outs, gts = [], []
    for f in seq:
        assert f.camera.model == "radtan" and len(f.camera.D) == 4  # the lens distortion is applied
        outs.append(p.process(f.image, f.camera, f.stamp))
        gts.append(f.gt_pose)
    assert len(outs) == 95 and all(o.outcome == PROCESSED for o in outs), {o.reason for o in outs}
    pos = np.array([o.odometry.pose[:3, 3] for o in outs])
    travel = float(np.linalg.norm(pos - pos[0], axis=1).max())
    print(f"EuRoC static: estimated travel {100 * travel:.2f} cm over {len(outs)} frames")
    assert travel < 0.05
    assert not any(o.odometry.keyframe for o in outs)
    assert all(o.extract_ms > 0 for o in outs)


def test_slambook_rgbd_metric_translations_sift():
    from lightglue_ros.io.datasets import open_sequence

    seq = open_sequence(str(data_dir("slambook_rgbd")), use_depth=True)
    p = Pipeline(PipelineConfig(frontend=FrontEndConfig(backend="sift"), odometry=OdometryConfig(use_depth=True)))
    est, gt = [], []
    for f in seq:
        o = p.process(f.image, f.camera, f.stamp, depth=f.depth)
        assert o.outcome == PROCESSED, o.reason
        est.append(o.odometry.pose)
        gt.append(f.gt_pose)
    assert p.state == TRACKING and o.odometry.metric

    def step(poses, a, b):
        return float(np.linalg.norm((invert_T(poses[a]) @ poses[b])[:3, 3]))

    rel = [step(est, k - 1, k) / step(gt, k - 1, k) for k in range(1, 5)]
    total = step(est, 0, 4) / step(gt, 0, 4)
    print("slambook RGB-D: step length ratios est/gt", [f"{r:.3f}" for r in rel], f"first->last {total:.3f}")
    # Frame 1->2: SIFT and LightGlue both measure ~0.46 m where pose.txt says 0.41 m (the poses are approximate,
    # see ../shared/data/README.md); the other steps and the whole span agree within 10%.
    assert abs(rel[0] - 1) < 0.2
    assert all(abs(r - 1) < 0.1 for r in rel[1:])
    assert abs(total - 1) < 0.1


# ---------------------------------------------------------------------------------------------------------------
# Real front end (ORB) on rendered frames with exact ground truth
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("motion,use_depth,frames", [("forward", False, 80), ("orbit", True, 50)])
def test_orb_on_rendered_sequence(motion, use_depth, frames):
    from lightglue_ros.io.datasets import open_sequence
    from test_odometry import ate

    seq = open_sequence(f"synthetic:frames={frames},motion={motion},depth={int(use_depth)}", use_depth=use_depth)
    p = Pipeline(PipelineConfig(frontend=FrontEndConfig(backend="orb"), odometry=OdometryConfig(use_depth=use_depth)))
    est, gt = [], []
    for f in seq:
        o = p.process(f.image, f.camera, f.stamp, depth=f.depth)
        assert o.outcome in OUTCOMES
        if o.odometry is not None and o.odometry.state == TRACKING:
            est.append(o.odometry.pose[:3, 3])
            gt.append(f.gt_pose[:3, 3])
    assert len(est) >= frames - 6
    est, gt = np.array(est), np.array(gt)
    err, scale = ate(est, gt, with_scale=not use_depth)
    length = path_length(gt)
    kind = "RGB-D SE(3)" if use_depth else "mono Sim(3)"
    print(f"ORB {motion} {kind} ATE {100 * err / length:.2f}% of {length:.2f} m")
    assert err / length < (0.005 if use_depth else 0.01)


# ---------------------------------------------------------------------------------------------------------------
# Real default front end (ALIKED + LightGlue) through a whip of the camera
# ---------------------------------------------------------------------------------------------------------------


def test_whip_never_reports_a_wrong_pose_and_recovers():
    """A bumped camera (60, 120, 60 deg yaw on three frames, then back): each of those frames ends failed with
    a reason or with a correct pose, never with a wrong one, and the track goes on against the old keyframe."""
    from scipy.spatial.transform import Rotation

    from lightglue_ros.io.datasets import open_sequence

    seq = open_sequence("synthetic:frames=18,motion=shake,shake_at=10,width=256,height=192")
    p = Pipeline()
    errors, outcomes = [], []
    for f in seq:
        o = p.process(f.image, f.camera, f.stamp)
        outcomes.append((o.outcome, o.reason))
        # (Before initialisation a rotation-only fit absorbs some translation: the whip comes later.)
        if o.odometry is not None and o.odometry.updated and o.odometry.state == TRACKING:
            d = invert_T(f.gt_pose) @ o.odometry.pose
            errors.append(np.degrees(Rotation.from_matrix(d[:3, :3]).magnitude()))
    assert all(outcome in OUTCOMES for outcome, _ in outcomes)
    assert all(reason for outcome, reason in outcomes if outcome == FAILED)
    assert max(errors) < 1.0, (errors, outcomes)
    assert outcomes[-1][0] == PROCESSED and p.odometry.state == TRACKING
    assert errors[-1] < 0.5
