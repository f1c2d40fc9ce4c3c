"""eval/metrics.py: exact metric checks on constructed trajectories, TUM round trip, AUC, the `eval` subcommand."""
import json
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lightglue_ros.eval import metrics as ev


def _gt_poses(n=60, seed=0):
    """A smooth 3-D path with turning orientation (a camera flying a loop)."""
    rng = np.random.default_rng(seed)
    s = np.linspace(0, 2 * np.pi, n)
    pos = np.stack([2 * np.cos(s), 0.3 * np.sin(3 * s), 3 * np.sin(s)], axis=1) + 0.01 * rng.standard_normal((n, 3))
    rots = Rotation.from_euler("xyz", np.stack([0.1 * np.sin(s), s, 0.05 * s], axis=1)).as_matrix()
    poses = []
    for p, R in zip(pos, rots):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, p
        poses.append(T)
    stamps = 100.0 + 0.1 * np.arange(n)
    return stamps, poses


def _move(poses, scale=1.0, R=np.eye(3), t=np.zeros(3)):
    """Apply the similarity x -> scale * R x + t to a list of T_world_cam (the world frame changes)."""
    out = []
    for T in poses:
        U = np.eye(4)
        U[:3, :3] = R @ T[:3, :3]
        U[:3, 3] = scale * (R @ T[:3, 3]) + t
        out.append(U)
    return out


def _umeyama_rmse(src, dst, with_scale):
    """Independent closed-form Umeyama (for the test only) -> RMSE of the aligned residuals."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    U, D, Vt = np.linalg.svd(xd.T @ xs / len(src))
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    c = np.trace(np.diag(D) @ S) / (xs ** 2).sum(1).mean() if with_scale else 1.0
    res = dst - (c * (R @ src.T).T + (mu_d - c * R @ mu_s))
    return float(np.sqrt((res ** 2).sum(1).mean()))


def test_sim3_recovers_scale_and_rigid_motion():
    stamps, gt = _gt_poses()
    R = Rotation.from_euler("zyx", [40, -20, 75], degrees=True).as_matrix()
    est = _move(gt, scale=3.0, R=R, t=np.array([5.0, -2.0, 7.0]))
    res, _, _ = ev.evaluate(ev.trajectory_from_poses(stamps, est), ev.trajectory_from_poses(stamps, gt), mono=True)
    assert res.alignment == "sim3" and res.num_matched == len(gt)
    assert res.ape.rmse < 1e-9 and res.ape.max < 1e-9
    # `scale` maps the estimate onto GT: an estimate 3x too large gets 1/3 (documented in eval/metrics.py).
    assert res.scale == pytest.approx(1.0 / 3.0, rel=1e-9)
    assert res.rpe_trans.rmse < 1e-9 and res.rpe_rot_deg.max < 1e-5
    assert res.path_length > 10 and res.ate_percent < 1e-6


def test_se3_does_not_correct_scale():
    stamps, gt = _gt_poses()
    est = _move(gt, scale=1.5)
    res, _, _ = ev.evaluate(ev.trajectory_from_poses(stamps, est), ev.trajectory_from_poses(stamps, gt), mono=False)
    assert res.alignment == "se3" and res.scale == 1.0
    assert res.ape.rmse > 0.1  # a wrong scale is an error in metric mode


def test_noisy_trajectory_has_expected_rmse():
    n, sigma = 400, 0.02
    stamps, gt = _gt_poses(n)
    noise = np.random.default_rng(1).normal(0.0, sigma, (n, 3))
    est = [T.copy() for T in gt]
    for T, d in zip(est, noise):
        T[:3, 3] += d
    R = Rotation.from_euler("y", 30, degrees=True).as_matrix()
    est = _move(est, scale=0.5, R=R, t=np.array([1.0, 2.0, 3.0]))
    res, _, _ = ev.evaluate(ev.trajectory_from_poses(stamps, est), ev.trajectory_from_poses(stamps, gt), mono=True)
    src = np.array([T[:3, 3] for T in est])
    dst = np.array([T[:3, 3] for T in gt])
    assert res.ape.rmse == pytest.approx(_umeyama_rmse(src, dst, True), rel=1e-6)
    assert res.ape.rmse == pytest.approx(sigma * math.sqrt(3), rel=0.1)  # what isotropic noise should give
    assert res.scale == pytest.approx(2.0, rel=0.01)


def test_association_by_stamp_and_gaps():
    stamps, gt = _gt_poses(50)
    # estimate every other frame, stamps off by 5 ms: all 25 pair up within the 20 ms window.
    est_st = stamps[::2] + 0.005
    est = gt[::2]
    res, _, _ = ev.evaluate(ev.trajectory_from_poses(est_st, est), ev.trajectory_from_poses(stamps, gt))
    assert res.num_matched == 25 and res.ape.rmse < 1e-9
    with pytest.raises(ev.EvaluationError, match="ground-truth stamp"):
        ev.evaluate(ev.trajectory_from_poses(stamps + 50.0, gt), ev.trajectory_from_poses(stamps, gt))


def test_tum_round_trip(tmp_path):
    stamps, gt = _gt_poses(10)
    stamps = stamps + 1341847980.722988  # real TUM-size stamps keep their microseconds
    path = tmp_path / "t.tum"
    assert ev.write_tum(path, stamps, gt) == 10
    first = path.read_text().splitlines()[0].split()
    assert len(first) == 8
    st, poses = ev.read_tum_poses(path)
    np.testing.assert_allclose(st, stamps, rtol=0, atol=1e-6)
    for a, b in zip(poses, gt):
        np.testing.assert_allclose(a, b, atol=1e-8)


def test_read_tum_errors(tmp_path):
    with pytest.raises(ev.EvaluationError, match="not found"):
        ev.read_tum(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n")
    with pytest.raises(ev.EvaluationError, match="TUM"):
        ev.read_tum(bad)


def test_pose_auc():
    assert ev.pose_auc([0.0, 0.0], [5]) == [pytest.approx(1.0)]
    assert ev.pose_auc([math.inf, math.nan], [5]) == [0.0]
    # one pair at half the threshold: recall line (0,0)->(2.5,1), then flat to 5 -> 0.25 + 0.5
    assert ev.pose_auc([2.5], [5])[0] == pytest.approx(0.75)
    # half the pairs failed: the curve tops out at 0.5
    a5, a10 = ev.pose_auc([1.0, math.inf], [5, 10])
    assert a5 == pytest.approx((0.5 * 1.0 / 2 + 0.5 * 4.0) / 5)
    assert a10 == pytest.approx((0.25 + 0.5 * 9.0) / 10)


def test_angular_pose_error():
    R = Rotation.from_euler("y", 10, degrees=True).as_matrix()
    er, et = ev.angular_pose_error(R, np.array([0, 0, 2.0]), np.eye(3), np.array([0, 0, 1.0]))
    assert er == pytest.approx(10.0) and et == pytest.approx(0.0, abs=1e-6)
    _, et = ev.angular_pose_error(np.eye(3), np.array([0, 0, -1.0]), np.eye(3), np.array([0, 0, 1.0]))
    assert et == pytest.approx(0.0, abs=1e-6)  # sign of t is folded, as in the papers
    _, et = ev.angular_pose_error(np.eye(3), np.array([1.0, 0, 0]), np.eye(3), np.array([0, 0, 1.0]))
    assert et == pytest.approx(90.0)


def test_eval_subcommand(tmp_path, capsys):
    from lightglue_ros.tools.cli import main

    stamps, gt = _gt_poses(30)
    ev.write_tum(tmp_path / "gt.tum", stamps, gt)
    ev.write_tum(tmp_path / "est.tum", stamps, _move(gt, scale=2.0))
    rc = main(["eval", str(tmp_path / "est.tum"), str(tmp_path / "gt.tum"), "--json", str(tmp_path / "m.json"),
               "--plot", str(tmp_path / "p.png")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "APE" in out and "RPE" in out and "Sim(3)" in out
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["ape"]["rmse"] < 1e-9 and m["scale"] == pytest.approx(0.5)
    assert (tmp_path / "p.png").stat().st_size > 1000
    rc = main(["eval", str(tmp_path / "est.tum"), str(tmp_path / "nope.tum")])
    assert rc == 2
    assert capsys.readouterr().err.strip().startswith("error:")


def test_static_estimate_falls_back_to_origin_alignment():
    """A camera that stands still gives evo a rank-deficient Umeyama problem: no crash, a note, first-pose alignment."""
    stamps, gt = _gt_poses(20)
    gt_static = [gt[0].copy() for _ in gt]
    est = [np.eye(4) for _ in gt]
    res, _, _ = ev.evaluate(ev.trajectory_from_poses(stamps, est), ev.trajectory_from_poses(stamps, gt_static))
    assert res.notes and "first pose" in res.notes[0]
    assert res.ape.max < 1e-9 and math.isnan(res.scale)
    assert json.loads(json.dumps(res.to_dict()))["scale"] is None  # NaN is written as null


def _drive(n=50, yaw_rate=0.01, step=1.0):
    """Planar drive: forward along the optical axis, turning about the vertical (optical y) axis."""
    poses, pos, yaw = [], np.zeros(3), 0.0
    for _ in range(n):
        T = np.eye(4)
        T[:3, :3] = Rotation.from_rotvec([0, yaw, 0]).as_matrix()
        T[:3, 3] = pos
        poses.append(T)
        pos = pos + step * T[:3, 2]
        yaw += yaw_rate
    return poses


def test_heading_errors_and_scale_ratios_are_exact():
    gt = _drive()
    assert ev.heading_deg(gt[10]) == pytest.approx(math.degrees(0.1))
    # an estimate whose yaw rate is 10 % too high, seen from another world frame and at twice the scale
    est = _move(_drive(yaw_rate=0.011), scale=2.0, R=Rotation.from_rotvec([0, 0.7, 0]).as_matrix(), t=[5, 0, 1])
    err = ev.heading_errors(est, gt)
    assert err[0] == 0 and err[30] == pytest.approx(math.degrees(0.03)) and err[-1] == pytest.approx(
        math.degrees(0.049))
    # scale: exact steps give 1 after the factor; a speed that doubles along the run shows as the ratio doubling
    pos = np.array([T[:3, 3] for T in gt])
    np.testing.assert_allclose(ev.step_scale_ratios(2 * pos, pos, 0.5, window=5), 1.0)
    grow = np.concatenate([[0.0], np.cumsum(np.linspace(1, 2, len(pos) - 1))])[:, None] * np.array([[0, 0, 1.0]])
    line = np.arange(len(pos))[:, None] * np.array([[0, 0, 1.0]])
    r = ev.step_scale_ratios(grow, line, window=1)
    assert r[0] == pytest.approx(1.0) and r[-1] == pytest.approx(2.0)
    assert len(ev.step_scale_ratios(pos[:3], pos[:3], window=5)) == 0


def test_chain_with_true_steps_recovers_the_drive_and_drift_report(tmp_path, capsys):
    gt = _drive(n=40, yaw_rate=0.02, step=0.8)
    rel = [np.linalg.inv(a) @ b for a, b in zip(gt[:-1], gt[1:])]
    unit = []
    for T in rel:  # what a two-view estimate knows: the direction of the translation only
        U = T.copy()
        U[:3, 3] /= np.linalg.norm(U[:3, 3])
        unit.append(U)
    steps = [np.linalg.norm(T[:3, 3]) for T in rel]
    chained = ev.chain_relative_poses(unit, steps)
    assert max(np.abs(a - b).max() for a, b in zip(chained, gt)) < 1e-9
    stamps = 0.1 * np.arange(len(gt))
    rep = ev.drift_report(stamps, chained, stamps, gt, at=(10, 20))
    assert rep["ate_percent_sim3"] < 1e-6 and rep["heading_error_max_deg"] < 1e-6
    assert sorted(rep["heading_error_deg"]) == [10, 20, 39] and rep["scale_start"] == pytest.approx(1.0)
    # unit steps (no scale knowledge): the scale ratio is constant, the shape is right
    rep = ev.drift_report(stamps, ev.chain_relative_poses(unit, [1.0] * len(unit)), stamps, gt)
    assert rep["scale_min"] == pytest.approx(rep["scale_max"]) and rep["ate_percent_sim3"] < 1e-6
    # the eval subcommand prints it
    from lightglue_ros.tools.cli import main

    ev.write_tum(tmp_path / "gt.tum", stamps, gt)
    ev.write_tum(tmp_path / "est.tum", stamps, _drive(n=40, yaw_rate=0.021, step=0.8))
    assert main(["eval", str(tmp_path / "est.tum"), str(tmp_path / "gt.tum"), "--drift", "--json",
                 str(tmp_path / "m.json")]) == 0
    assert "heading error" in capsys.readouterr().out
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["drift"]["heading_error_deg"]["39"] == pytest.approx(math.degrees(0.039), abs=1e-6)
