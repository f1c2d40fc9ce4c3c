"""Trajectory evaluation: TUM files in and out, evo APE/RPE with Sim(3) or SE(3) alignment, a bird's-eye plot.

The metrics themselves come from evo (Umeyama alignment, APE, RPE, stamp association); this module only decides
which of them to run, collects the numbers into one typed record and renders it (table, JSON, plot).

Conventions:
- trajectories are ``T_world_cam`` in the camera optical convention (z forward, x right, y down), TUM rows
  ``stamp tx ty tz qx qy qz qw``;
- ``scale`` in the result is the Sim(3) factor evo applies to the *estimate* to bring it onto the ground truth,
  i.e. ground-truth units per estimate unit. An estimate that is the ground truth scaled by 3 gives 1/3.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from lightglue_ros.core.errors import LightGlueRosError
from lightglue_ros.eval.viz import plot_topdown

#: Maximum stamp difference (s) for pairing an estimated pose with a ground-truth pose.
MAX_STAMP_DIFF = 0.02


class EvaluationError(LightGlueRosError):
    """A user-facing problem with the inputs (unreadable file, no common stamps, too few poses)."""


@dataclass
class Stats:
    """Summary statistics of a set of errors (NaN when there are none)."""

    rmse: float = math.nan
    mean: float = math.nan
    median: float = math.nan
    max: float = math.nan
    std: float = math.nan

    @classmethod
    def of(cls, errors: np.ndarray) -> "Stats":
        e = np.asarray(errors, dtype=float)
        if e.size == 0:
            return cls()
        return cls(rmse=float(np.sqrt(np.mean(e ** 2))), mean=float(np.mean(e)), median=float(np.median(e)),
                   max=float(np.max(e)), std=float(np.std(e)))


@dataclass
class EvalResult:
    """APE/RPE of an estimate against ground truth, with how many poses were associated and the alignment."""

    alignment: str  # "sim3" (monocular: rotation, translation and scale) | "se3" (metric)
    num_est: int  # poses in the estimate
    num_gt: int  # poses in the ground truth
    num_matched: int  # associated pairs the metrics are computed on
    ape: Stats  # translation part after alignment, GT units
    rpe_trans: Stats  # per-frame (delta = 1 associated pose) translation error, GT units
    rpe_rot_deg: Stats  # per-frame rotation error, degrees
    path_length: float  # length of the associated GT path, GT units
    ate_percent: float  # APE RMSE as % of the path length
    scale: float  # factor applied to the estimate (1.0 for SE(3)); see module docstring
    max_stamp_diff: float = MAX_STAMP_DIFF
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return _finite(asdict(self))


def _finite(obj):
    """JSON has no NaN/inf: write them as null so every JSON reader accepts the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------------- TUM files

def trajectory_from_poses(stamps: Sequence[float], poses: Sequence[np.ndarray], name: str = ""):
    """Build an evo PoseTrajectory3D from stamps and 4x4 T_world_cam matrices."""
    from evo.core.trajectory import PoseTrajectory3D

    if len(poses) == 0:
        raise EvaluationError(f"trajectory {name or ''} has no poses".replace("  ", " "))
    mats = [np.asarray(p, dtype=float) for p in poses]
    return PoseTrajectory3D(poses_se3=mats, timestamps=np.asarray(stamps, dtype=float), name=name or None)


def format_stamp(stamp: float) -> str:
    """Shortest decimal that reads back to the same float (at most ns): no 1341847980.722987890 noise."""
    return np.format_float_positional(float(stamp), precision=9, unique=True, trim="-")


def write_tum(path, stamps: Sequence[float], poses: Sequence[np.ndarray]) -> int:
    """Write ``stamp tx ty tz qx qy qz qw`` rows; returns the number of rows. Stamps keep microseconds and more."""
    from scipy.spatial.transform import Rotation

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for stamp, pose in zip(stamps, poses):
        T = np.asarray(pose, dtype=float)
        q = Rotation.from_matrix(T[:3, :3]).as_quat()  # x y z w, the TUM order
        vals = " ".join(f"{v:.9f}" for v in (*T[:3, 3], *q))
        lines.append(f"{format_stamp(stamp)} {vals}\n")
    path.write_text("".join(lines))
    return len(lines)


def read_tum(path):
    """Read a TUM file into an evo PoseTrajectory3D; unreadable input raises EvaluationError with the reason."""
    from evo.tools import file_interface

    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"trajectory file not found: {path}")
    try:
        traj = file_interface.read_tum_trajectory_file(str(path))
    except Exception as exc:  # evo raises several types for malformed rows
        raise EvaluationError(f"{path}: not a TUM trajectory (stamp tx ty tz qx qy qz qw per row): {exc}") from None
    traj.name = path.name
    return traj


def read_tum_poses(path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Read a TUM file as (stamps, list of 4x4 T_world_cam); unreadable input raises EvaluationError."""
    traj = read_tum(path)
    return np.asarray(traj.timestamps), [np.asarray(p) for p in traj.poses_se3]


# ---------------------------------------------------------------------------------------------------- metrics

def evaluate(est, gt, *, mono: bool = True, max_diff: float = MAX_STAMP_DIFF) -> tuple[EvalResult, object, object]:
    """APE/RPE of ``est`` against ``gt`` (both evo trajectories).

    Returns (result, aligned estimate, associated GT) so callers can plot what was measured.
    """
    import copy

    from evo.core import metrics, sync

    try:
        gt_a, est_a = sync.associate_trajectories(gt, est, max_diff=max_diff)
    except Exception as exc:
        raise EvaluationError(f"no estimated pose within {max_diff * 1000:.0f} ms of a ground-truth stamp ({exc})") \
            from None
    n = est_a.num_poses
    min_poses = 3 if mono else 2
    if n < min_poses:
        raise EvaluationError(f"only {n} poses share a stamp with the ground truth; need {min_poses} to align")
    est_a = copy.deepcopy(est_a)
    notes = []
    scale = _align(est_a, gt_a, mono, notes)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((gt_a, est_a))
    rpe_t = _rpe(gt_a, est_a, metrics.PoseRelation.translation_part)
    rpe_r = _rpe(gt_a, est_a, metrics.PoseRelation.rotation_angle_deg)
    path_len = float(gt_a.path_length)
    ape_stats = Stats.of(ape.error)
    result = EvalResult(
        alignment="sim3" if mono else "se3", num_est=est.num_poses, num_gt=gt.num_poses, num_matched=n,
        ape=ape_stats, rpe_trans=Stats.of(rpe_t), rpe_rot_deg=Stats.of(rpe_r), path_length=path_len,
        ate_percent=100.0 * ape_stats.rmse / path_len if path_len > 0 else math.nan,
        scale=float(scale), max_stamp_diff=max_diff, notes=notes,
    )
    return result, est_a, gt_a


def _align(est_a, gt_a, mono: bool, notes: list) -> float:
    """Umeyama (Sim(3) or SE(3)) in place; returns the scale applied to the estimate (1.0 for SE(3)).

    Umeyama needs positions that span space: a camera that stands still (or moves along a line only, for the
    rotation) gives a rank-deficient covariance and evo refuses. The errors are then still meaningful after
    aligning the first poses, which is what we do, saying so in ``notes`` (scale stays 1: nothing to fit it to).
    """
    from evo.core.geometry import GeometryException

    try:
        with np.errstate(all="ignore"):
            _, _, scale = est_a.align(gt_a, correct_scale=mono)
    except GeometryException as exc:
        est_a.align_origin(gt_a)
        notes.append(f"Umeyama alignment impossible ({exc}); aligned on the first pose instead, scale not fitted")
        return math.nan if mono else 1.0
    if not np.isfinite(scale) or (mono and scale <= 0):
        notes.append("degenerate alignment (estimate does not move?)")
    return float(scale) if mono else 1.0


def _rpe(gt_a, est_a, relation) -> np.ndarray:
    from evo.core import metrics

    rpe = metrics.RPE(relation, delta=1, delta_unit=metrics.Unit.frames, all_pairs=False)
    rpe.process_data((gt_a, est_a))
    return np.asarray(rpe.error)


def evaluate_files(traj_path, gt_path, *, mono: bool = True, max_diff: float = MAX_STAMP_DIFF):
    """Evaluate the TUM file ``traj_path`` against the TUM file ``gt_path``; see `evaluate`."""
    return evaluate(read_tum(traj_path), read_tum(gt_path), mono=mono, max_diff=max_diff)


def pose_auc(errors: Sequence[float], thresholds: Sequence[float] = (5.0, 10.0, 20.0)) -> list[float]:
    """Area under the recall-vs-error curve up to each threshold, normalised to [0, 1].

    As reported in the SuperGlue/LightGlue papers: the recall curve runs through (0, 0) and the points
    (e_k, k/N) of the sorted errors, joined by straight lines (trapezoid rule), and is cut at the threshold.
    Failures count as infinite error (they lower recall, never raise it).
    """
    e = np.sort(np.asarray(errors, dtype=float))
    if e.size == 0:
        return [math.nan for _ in thresholds]
    e = np.where(np.isnan(e), np.inf, e)
    recall = np.arange(1, e.size + 1) / e.size
    xs, ys = np.concatenate([[0.0], e]), np.concatenate([[0.0], recall])
    out = []
    for thr in thresholds:
        k = int(np.searchsorted(xs, thr, side="left"))  # points strictly below thr
        x = np.concatenate([xs[:k], [thr]])
        y = np.concatenate([ys[:k], [ys[k - 1]]])  # flat from the last point below thr up to thr
        out.append(float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0) / thr))
    return out


def angular_pose_error(R: np.ndarray, t: np.ndarray, R_gt: np.ndarray, t_gt: np.ndarray,
                       min_baseline: float = 1e-6) -> tuple[float, float]:
    """(rotation error, translation direction error) in degrees of an estimated relative pose against GT.

    Any convention works as long as both poses use it (tools/bench.py passes T_0_1 blocks, as `geometry` returns).

    The direction error folds t and -t together (min(e, 180 - e)) as the papers do for essential-matrix poses.
    With a GT baseline below ``min_baseline`` the direction is undefined and its error is reported as 0.
    """
    cos_r = (np.trace(R.T @ R_gt) - 1.0) / 2.0
    err_r = math.degrees(math.acos(float(np.clip(cos_r, -1.0, 1.0))))
    n, n_gt = float(np.linalg.norm(t)), float(np.linalg.norm(t_gt))
    if n_gt < min_baseline:
        return err_r, 0.0
    if n == 0.0:
        return err_r, 90.0
    cos_t = float(np.clip(np.dot(t, t_gt) / (n * n_gt), -1.0, 1.0))
    err_t = math.degrees(math.acos(cos_t))
    return err_r, min(err_t, 180.0 - err_t)


# ---------------------------------------------------------------------------------------------------- drift

def heading_deg(T: np.ndarray) -> float:
    """Heading of a camera pose: the yaw of its optical axis about the world's vertical (y, optical frame), deg."""
    z = np.asarray(T, dtype=float)[:3, 2]
    return math.degrees(math.atan2(z[0], z[2]))


def heading_errors(est_poses: Sequence[np.ndarray], gt_poses: Sequence[np.ndarray]) -> np.ndarray:
    """Heading error (deg, wrapped to +-180) of every pose, with the first poses aligned (rotation only).

    Both lists are ``T_world_cam`` of the same frames; each is expressed in its own first camera frame, so the
    error at frame i is the heading the estimate has accumulated wrongly since frame 0 (no fit, no scale).
    """
    e0, g0 = np.linalg.inv(np.asarray(est_poses[0], float)), np.linalg.inv(np.asarray(gt_poses[0], float))
    out = [heading_deg(e0 @ np.asarray(e, float)) - heading_deg(g0 @ np.asarray(g, float))
           for e, g in zip(est_poses, gt_poses)]
    return (np.asarray(out) + 180.0) % 360.0 - 180.0


def step_scale_ratios(est_positions: np.ndarray, gt_positions: np.ndarray, scale: float = 1.0,
                      window: int = 10) -> np.ndarray:
    """Estimated / true distance travelled over each run of `window` steps (entry i: steps i .. i + window - 1).

    `scale` multiplies the estimate (the Sim(3) factor of `evaluate`): 1 everywhere means no scale drift; a ratio
    going from 0.6 to 2 is a scale that grew by a factor of 3 along the run. NaN where the truth does not move.
    """
    est = np.linalg.norm(np.diff(np.asarray(est_positions, float), axis=0), axis=1) * scale
    gt = np.linalg.norm(np.diff(np.asarray(gt_positions, float), axis=0), axis=1)
    if len(gt) < window:
        return np.zeros(0)
    kernel = np.ones(window)
    num, den = np.convolve(est, kernel, "valid"), np.convolve(gt, kernel, "valid")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 1e-9, num / den, np.nan)


def chain_relative_poses(relative: Sequence[np.ndarray], steps: Sequence[float]) -> list[np.ndarray]:
    """``T_world_cam`` of frames 0..n from n relative poses ``T_i_i+1``, translation i rescaled to `steps[i]`.

    The reference of issue 11: consecutive two-view poses (direction only) chained with known step lengths.
    A relative pose without translation (pure rotation) keeps zero translation.
    """
    poses = [np.eye(4)]
    for T, step in zip(relative, steps):
        T = np.array(T, dtype=float)
        n = np.linalg.norm(T[:3, 3])
        T[:3, 3] = T[:3, 3] / n * step if n > 0 else 0.0
        poses.append(poses[-1] @ T)
    return poses


def drift_report(est_stamps, est_poses, gt_stamps, gt_poses, at: Sequence[int] = (40, 80, 120, 160),
                 window: int = 10, max_diff: float = MAX_STAMP_DIFF) -> dict:
    """Report what a monocular drive does wrong over time: Sim(3) ATE, heading error, per-frame rotation, scale.

    `at`: associated pose indices (0 = the first) to report the heading error at (the last pose is always
    reported). The scale ratios are `step_scale_ratios` after the Sim(3) fit (``scale_start`` / ``scale_end``:
    the first and last window, ``scale_min`` / ``scale_max``: over the run).
    """
    # evaluate associates the stamps (evo) and returns the estimate after its Sim(3) fit: the heading errors do not
    # see that fit (first poses aligned), and the step ratios come out with its scale applied.
    result, est_a, gt_a = evaluate(trajectory_from_poses(est_stamps, est_poses, "estimate"),
                                   trajectory_from_poses(gt_stamps, gt_poses, "groundtruth"), mono=True,
                                   max_diff=max_diff)
    est, gt = est_a.poses_se3, gt_a.poses_se3
    heading = heading_errors(est, gt)
    ratios = step_scale_ratios(est_a.positions_xyz, gt_a.positions_xyz, 1.0, window)
    finite = ratios[np.isfinite(ratios)]
    marks = sorted({min(int(k), len(est) - 1) for k in at} | {len(est) - 1})
    return {
        "poses": len(est),
        "path_length": result.path_length,
        "ate_percent_sim3": result.ate_percent,
        "sim3_scale": result.scale,
        "heading_error_deg": {int(k): float(heading[k]) for k in marks},
        "heading_error_max_deg": float(np.max(np.abs(heading))),
        "rpe_rot_deg_mean": result.rpe_rot_deg.mean,
        "rpe_rot_deg_max": result.rpe_rot_deg.max,
        "scale_window": window,
        "scale_start": float(finite[0]) if finite.size else math.nan,
        "scale_end": float(finite[-1]) if finite.size else math.nan,
        "scale_min": float(finite.min()) if finite.size else math.nan,
        "scale_max": float(finite.max()) if finite.size else math.nan,
        "scale_ratios": [float(r) for r in ratios],
    }


def format_drift(report: dict) -> str:
    """Format the drift report as a few lines of text."""
    head = ", ".join(f"{k}: {v:+.2f}" for k, v in report["heading_error_deg"].items())
    return "\n".join([
        f"{report['poses']} poses, path {report['path_length']:.1f}, Sim(3) ATE {report['ate_percent_sim3']:.2f} % "
        f"of path",
        f"heading error (first pose aligned, deg) at pose {head}; max |error| {report['heading_error_max_deg']:.2f}",
        f"per-frame rotation error mean {report['rpe_rot_deg_mean']:.3f} deg, max {report['rpe_rot_deg_max']:.3f} deg",
        f"scale (estimated / true distance over {report['scale_window']} steps, after Sim(3)): first "
        f"{report['scale_start']:.3f}, last {report['scale_end']:.3f}, min {report['scale_min']:.3f}, max "
        f"{report['scale_max']:.3f}",
    ])


# ---------------------------------------------------------------------------------------------------- output

def format_table(result: EvalResult, title: str = "") -> str:
    """Format an `EvalResult` as text: alignment, association, a table of APE/RPE statistics, path and scale."""
    unit = "GT units" if result.alignment == "sim3" else "m"
    rows = [
        ("APE trans", result.ape, unit),
        ("RPE trans", result.rpe_trans, unit),
        ("RPE rot", result.rpe_rot_deg, "deg"),
    ]
    lines = []
    if title:
        lines.append(title)
    align = "Sim(3) (Umeyama with scale)" if result.alignment == "sim3" else "SE(3) (Umeyama, no scale)"
    lines.append(f"alignment: {align}; {result.num_matched} of {result.num_est} estimated poses associated "
                 f"with {result.num_gt} GT poses (max stamp diff {result.max_stamp_diff * 1000:.0f} ms)")
    lines.append(f"{'metric':<10} {'rmse':>10} {'mean':>10} {'median':>10} {'max':>10}  unit")
    for name, s, u in rows:
        lines.append(f"{name:<10} {s.rmse:>10.4f} {s.mean:>10.4f} {s.median:>10.4f} {s.max:>10.4f}  {u}")
    lines.append(f"path length {result.path_length:.3f}, ATE {result.ate_percent:.2f} % of path, "
                 f"scale (est -> GT) {result.scale:.4f}")
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines)


def write_json(path, payload: dict) -> None:
    """Write ``payload`` as indented JSON (NaN and inf as null), creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(payload), indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------- CLI

def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `eval` command."""
    p = subparsers.add_parser(
        "eval", help="evaluate a TUM trajectory against ground truth (evo APE/RPE)",
        description="APE (translation) and per-frame RPE of TRAJ against GT, both TUM files, associated by stamp "
                    f"(max {MAX_STAMP_DIFF * 1000:.0f} ms). Monocular estimates are aligned with Sim(3) "
                    "(Umeyama with scale), metric ones with SE(3).")
    p.add_argument("traj", metavar="TRAJ", help="estimated trajectory (TUM)")
    p.add_argument("gt", metavar="GT", help="ground-truth trajectory (TUM)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--mono", dest="metric", action="store_false",
                      help="monocular estimate: Sim(3) alignment (default)")
    mode.add_argument("--metric", dest="metric", action="store_true", help="metric estimate: SE(3) alignment")
    p.add_argument("--max-diff", type=float, default=MAX_STAMP_DIFF, help="max stamp difference in s (0.02)")
    p.add_argument("--plot", metavar="FILE.png", help="write a top-down (x-z) plot of both trajectories")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    p.add_argument("--drift", action="store_true",
                   help="also report drift over time: heading error (first pose aligned), per-frame rotation error, "
                        "scale of the estimated steps (after Sim(3)) along the run")
    p.set_defaults(func=run_eval, metric=False)
    return p


def run_eval(args) -> int:
    """Run `eval`."""
    result, est_a, gt_a = evaluate_files(args.traj, args.gt, mono=not args.metric, max_diff=args.max_diff)
    print(format_table(result, title=f"{args.traj} vs {args.gt}"))
    payload = result.to_dict()
    if getattr(args, "drift", False):
        (est_stamps, est_poses), (gt_stamps, gt_poses) = read_tum_poses(args.traj), read_tum_poses(args.gt)
        report = drift_report(est_stamps, est_poses, gt_stamps, gt_poses, max_diff=args.max_diff)
        print(format_drift(report))
        payload["drift"] = report
    if args.json:
        write_json(args.json, payload)
    if args.plot:
        plot_topdown(args.plot, est_a, gt_a, title=Path(args.traj).name)
    return 0


def evaluate_run(seq, run, out: Optional[Path] = None, plot: bool = True):
    """Evaluate a run against the sequence's GT (and write groundtruth.tum / trajectory.png into ``out``)."""
    gt = seq.ground_truth()
    if not gt:
        raise EvaluationError(f"source {seq.name} has no ground-truth poses")
    gt_stamps, gt_poses = [s for s, _ in gt], [T for _, T in gt]
    if out is not None:
        write_tum(out / "groundtruth.tum", gt_stamps, gt_poses)
    if len(run.poses) < 3:
        return None, f"only {len(run.poses)} estimated poses: nothing to evaluate"
    mono = not (run.metric and getattr(seq, "metric_gt", False))
    try:
        res, est_a, gt_a = evaluate(trajectory_from_poses(run.stamps, run.poses, "estimate"),
                                    trajectory_from_poses(gt_stamps, gt_poses, "groundtruth"), mono=mono)
    except EvaluationError as exc:
        return None, str(exc)
    if out is not None and plot:
        plot_topdown(out / "trajectory.png", est_a, gt_a, title=seq.name)
    return res, ""
