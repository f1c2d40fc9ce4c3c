"""Run the pipeline over a sequence: one row per frame (every frame, whatever its outcome), the poses, a summary.

``run_sequence(seq, PipelineConfig())`` is what ``lightglue-ros run`` does before it writes its files; a notebook
can call it on any sequence of `core.types.Frame`. ``match_pair`` is the two-view tool (``lightglue-ros pair``).
"""
from __future__ import annotations

import csv
import dataclasses
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from lightglue_ros.core.errors import UserError
from lightglue_ros.core.types import FAILED, OUTCOMES, PROCESSED, FrameOutcome, reason_key
from lightglue_ros.eval.metrics import format_stamp

#: frames.csv columns, in order (documented in the README of the run command's --help).
FRAME_COLUMNS = ("index", "stamp", "outcome", "reason", "keypoints", "matches", "inliers", "stop_layer", "pruned",
                 "extract_ms", "match_ms", "pose_ms", "total_ms", "state", "scale_source")


@dataclass
class RunResult:
    """A run over a sequence: one row per frame, and the stamps and poses of the frames with a pose."""

    rows: list  # one dict per frame (FRAME_COLUMNS)
    stamps: list  # stamps of the frames with a pose
    poses: list  # 4x4 T_world_cam of those frames
    wall_s: float
    metric: bool  # the odometry produced metric translation (RGB-D)
    interrupted: bool = False  # Ctrl-C: the rows so far are still written


def frame_row(index: int, outcome: FrameOutcome) -> dict:
    """One frames.csv row. ``index`` is the frame's position in the source (before --stride)."""
    tr, od = outcome.track, outcome.odometry
    tel = tr.telemetry if tr is not None else None
    return {
        "index": index,
        "stamp": format_stamp(outcome.stamp),
        "outcome": outcome.outcome,
        "reason": outcome.reason,
        "keypoints": tel.keypoints1 if tel is not None else 0,
        "matches": tr.num_matches if tr is not None else 0,
        "inliers": od.inliers if od is not None else 0,
        "stop_layer": tel.stop_layer if tel is not None else 0,
        "pruned": (tel.pruned0 + tel.pruned1) if tel is not None else 0,
        "extract_ms": round(outcome.extract_ms, 3),
        "match_ms": round(outcome.match_ms, 3),
        "pose_ms": round(outcome.pose_ms, 3),
        "total_ms": round(outcome.total_ms, 3),
        "state": od.state if od is not None else "",
        "scale_source": od.scale_source if od is not None else "",
    }


def process_frame(pipeline, frame) -> FrameOutcome:
    """One frame through the pipeline; a frame the reader could not read is `failed` here, with its reason."""
    if frame.image is None or frame.error:
        return FrameOutcome(stamp=float(frame.stamp), outcome=FAILED,
                            reason=f"unreadable: {frame.error or 'no image'}")
    return pipeline.process(frame.image, frame.camera, frame.stamp, depth=frame.depth)


def run_sequence(seq, pipeline_cfg, progress: bool = True, desc: str = "") -> RunResult:
    """Run the pipeline over ``seq`` (a tqdm bar unless ``progress`` is False); Ctrl-C ends it with what was done."""
    from tqdm import tqdm

    from lightglue_ros.odometry.pipeline import Pipeline

    pipeline = Pipeline(pipeline_cfg)
    rows, stamps, poses, metric, interrupted = [], [], [], False, False
    # disable=None: tqdm turns itself off when stderr is not a terminal (logs, CI), on otherwise.
    bar = tqdm(total=len(seq), desc=desc or getattr(seq, "name", ""), unit="frame", file=sys.stderr,
               disable=None if progress else True, leave=False)
    t0 = time.perf_counter()
    try:
        for frame in seq:
            # Keep only the row and the pose: whole outcomes (keypoint arrays) of a long sequence fill memory.
            outcome = process_frame(pipeline, frame)
            rows.append(frame_row(frame.index, outcome))
            od = outcome.odometry
            if od is not None and od.pose is not None and np.all(np.isfinite(od.pose)):
                stamps.append(float(outcome.stamp))
                poses.append(np.asarray(od.pose, dtype=float))
                metric = metric or bool(od.metric)
            bar.update(1)
    except KeyboardInterrupt:  # a long run stopped by hand still leaves its files behind
        interrupted = True
    bar.close()
    return RunResult(rows=rows, stamps=stamps, poses=poses, wall_s=time.perf_counter() - t0, metric=metric,
                     interrupted=interrupted)


def write_frames_csv(path: Path, rows: Sequence[dict]) -> None:
    """Write the frame rows to ``path`` as CSV with the FRAME_COLUMNS header."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FRAME_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def _mean(values) -> Optional[float]:
    vals = [float(v) for v in values]
    return float(np.mean(vals)) if vals else None


def summarize(run: RunResult) -> dict:
    """Summarise a run for summary.json: outcome and reason counts, frame rates and mean telemetry."""
    rows = run.rows
    n = len(rows)
    by_outcome = Counter(r["outcome"] for r in rows)
    reasons = {o: dict(Counter(reason_key(r["reason"]) if r["reason"] else "ok" for r in rows if r["outcome"] == o))
               for o in OUTCOMES}
    processed = [r for r in rows if r["outcome"] == PROCESSED]
    busy_ms = sum(r["total_ms"] for r in rows)
    return {
        "frames": n,
        "poses": len(run.poses),
        "outcomes": {o: by_outcome.get(o, 0) for o in OUTCOMES},
        "reasons": reasons,
        "wall_s": run.wall_s,
        "fps_wall": n / run.wall_s if run.wall_s > 0 else None,  # with reading and decoding images
        "fps_pipeline": n / (busy_ms / 1000.0) if busy_ms > 0 else None,  # pipeline time only
        "mean_stop_layer": _mean(r["stop_layer"] for r in rows if r["stop_layer"] > 0),
        "mean_pruned": _mean(r["pruned"] for r in rows if r["stop_layer"] > 0),
        "mean_keypoints": _mean(r["keypoints"] for r in rows if r["keypoints"] > 0),
        "mean_matches": _mean(r["matches"] for r in processed),
        "mean_inliers": _mean(r["inliers"] for r in processed),
        "mean_ms": {k: _mean(r[k] for r in rows if r["total_ms"] > 0)
                    for k in ("extract_ms", "match_ms", "pose_ms", "total_ms")},
        "metric_translation": run.metric,
    }


def match_pair(img0, img1, cam0, cam1, fe_cfg, od_cfg=None):
    """Front end on two images + PoseLib relative pose: (TrackResult, RelativePose, weak).

    A two-view tool returns its best pose: the odometry's refusals (small parallax, rotation-only, fewer inliers
    than it chains on) are off, PoseLib still needs 5 inliers. ``weak`` is True when the pose has fewer inliers
    than the odometry's ``min_inliers`` or would have been refused there (the reason says why).
    """
    from lightglue_ros import geometry
    from lightglue_ros.matching.frontend import FrontEnd
    from lightglue_ros.odometry.odometry import OdometryConfig

    od_cfg = od_cfg or OdometryConfig()
    fe = FrontEnd(dataclasses.replace(fe_cfg, auto_promote=True))
    fe.track(img0, stamp=0.0)
    tr = fe.track(img1, stamp=1.0)
    if not tr.ok:
        raise UserError(f"matching failed: {tr.reason}")
    p0, p1 = geometry.undistort_points(cam0, tr.points0), geometry.undistort_points(cam1, tr.points1)
    rel = geometry.relative_pose(p0, p1, cam0, cam1, geometry.two_view_config(od_cfg))
    strict = geometry.relative_pose(p0, p1, cam0, cam1, od_cfg) if rel.ok else rel
    weak = bool(rel.ok and (not strict.ok or rel.num_inliers < od_cfg.min_inliers))
    if weak and not rel.reason:
        rel.reason = f"weak: {strict.reason or 'few inliers'} (the odometry would not chain this pose)"
    return tr, rel, weak
