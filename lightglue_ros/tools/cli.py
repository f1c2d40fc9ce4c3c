"""`lightglue-ros`: the offline tools. No ROS here; everything runs on datasets and image files.

    lightglue-ros run SOURCE --out DIR      odometry over a sequence -> trajectory.tum, frames.csv, summary.json
    lightglue-ros eval TRAJ GT              evo APE/RPE of a TUM trajectory (see eval/metrics.py)
    lightglue-ros pair IMG0 IMG1 ...        match two images, print the relative pose
    lightglue-ros bench frontend|accuracy   speed against the official reference / accuracy per backend

User mistakes (bad path, unknown layout, bad flag value) end in one ``error: ...`` line on stderr and exit code 2,
never a traceback; bugs still raise, so they are not hidden behind a friendly line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from lightglue_ros.core.errors import LightGlueRosError, UserError
from lightglue_ros.eval import metrics as evaluate
from lightglue_ros.eval.viz import plot_matches
from lightglue_ros.odometry.runner import FRAME_COLUMNS, match_pair, run_sequence, summarize, write_frames_csv
from lightglue_ros.tools.args import PRECISIONS, positive_int

PROG = "lightglue-ros"
BACKENDS = ("lightglue", "xfeat", "orb", "sift", "hf")  # = frontend.BACKENDS / DETECTORS, here so --help needs no torch
DETECTORS = ("aliked", "dog")


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus a message; we print one line that names the fix (the --help of the command)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


# ---------------------------------------------------------------------------------------------------- config

def add_frontend_args(p: argparse.ArgumentParser, max_keypoints_default: Optional[int] = None) -> None:
    """Add the front-end flags (backend, keypoints, detector, device, precision, confidences, threads) to ``p``."""
    p.add_argument("--backend", choices=BACKENDS,
                   help="feature backend (default: lightglue = ALIKED + LightGlue; xfeat = XFeat + LighterGlue, "
                        "real time on a CPU)")
    p.add_argument("--max-keypoints", type=positive_int, default=max_keypoints_default, metavar="N",
                   help="keypoints per frame (default 1024)")
    p.add_argument("--detector", choices=DETECTORS,
                   help="lightglue backend's keypoints: aliked (ALIKED's own, default) or dog (OpenCV's DoG: "
                        "more precise poses on easy pairs, slower)")
    p.add_argument("--no-refine", dest="refine_matches", action="store_const", const=False,
                   help="lightglue backend: keep the matched points where they were detected (no patch alignment)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="torch device (default auto)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="network precision (fp16: CUDA only; bf16: xfeat on a CPU only; auto: see README)")
    p.add_argument("--depth-confidence", type=float, metavar="C",
                   help="LightGlue early exit (default 0.95; -1 runs all layers)")
    p.add_argument("--width-confidence", type=float, metavar="C",
                   help="LightGlue point pruning (default: the backend's, lightglue 0.99, xfeat 0.95; "
                        "-1 disables)")
    p.add_argument("--xfeat-scale", type=float, metavar="S",
                   help="xfeat backend: run the network on the image scaled by S (0.25..1, default 1), "
                        "keypoints mapped back")
    p.add_argument("--hf-model", metavar="ID_OR_DIR",
                   help="hf backend: transformers model, hub id (ETH-CVG/lightglue_superpoint, "
                        "zju-community/efficientloftr) or a saved folder; needs pip install .[hf]")
    p.add_argument("--hf-threshold", type=float, metavar="S",
                   help="hf backend: match score threshold (default: the model's own)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 avoids oversubscription on busy machines)")


_FRONTEND_FLAGS = {"backend": "backend", "max_keypoints": "max_keypoints", "detector": "detector",
                   "refine_matches": "refine_matches", "device": "device",
                   "precision": "precision", "depth_confidence": "depth_confidence",
                   "width_confidence": "width_confidence", "threads": "num_threads", "hf_model": "hf_model",
                   "hf_threshold": "hf_threshold", "xfeat_scale": "xfeat_scale"}


def frontend_config_from_args(args, base=None):
    """Return ``base`` (default: `FrontEndConfig()`) with the front-end flags that were given applied."""
    from lightglue_ros.matching.frontend import FrontEndConfig

    cfg = base if base is not None else FrontEndConfig()
    changes = {f: getattr(args, a) for a, f in _FRONTEND_FLAGS.items() if getattr(args, a, None) is not None}
    return dataclasses.replace(cfg, **changes)


def _coerce(section: str, key: str, value, default):
    """YAML value -> the type of the dataclass default; a wrong type is the user's mistake, said plainly."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"config: {section}.{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(default, str) and isinstance(value, str):
        return value
    if default is None or isinstance(default, (list, tuple, dict)):
        return value
    raise UserError(f"config: {section}.{key} must be a {type(default).__name__}, got {value!r}")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def load_config_file(path: str, frontend, odometry):
    """Apply a YAML file onto the two configs.

    Accepted shapes: ``{frontend: {...}, odometry: {...}}``, flat keys (each goes to whichever config has that
    field, the front end first), dotted keys (``frontend.max_keypoints``), and a ROS 2 parameter file
    (``node_name: {ros__parameters: {...}}``), so the node's YAML can be reused offline.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config {p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"config {p}: expected a mapping of settings at the top level")
    for v in list(data.values()):  # ROS 2 parameter file: node -> ros__parameters -> params
        if isinstance(v, dict) and "ros__parameters" in v:
            data = v["ros__parameters"]
            break
    fe_fields = {f.name: f for f in dataclasses.fields(frontend)}
    od_fields = {f.name: f for f in dataclasses.fields(odometry)}
    fe_changes, od_changes, unknown = {}, {}, []
    for key, value in _flatten(data).items():
        section, _, name = key.rpartition(".")
        if section in ("", "frontend") and name in fe_fields:
            fe_changes[name] = _coerce("frontend", name, value, getattr(frontend, name))
        elif section in ("", "odometry") and name in od_fields:
            od_changes[name] = _coerce("odometry", name, value, getattr(odometry, name))
        else:
            unknown.append(key)
    if unknown:
        raise UserError(f"config {p}: unknown setting(s) {', '.join(sorted(unknown))}")
    return dataclasses.replace(frontend, **fe_changes), dataclasses.replace(odometry, **od_changes)


def pipeline_config_from_args(args):
    """Defaults <- YAML file (--config) <- command-line flags, in that order of precedence (flags win)."""
    from lightglue_ros.matching.frontend import FrontEndConfig
    from lightglue_ros.odometry.odometry import OdometryConfig
    from lightglue_ros.odometry.pipeline import PipelineConfig

    fe, od = FrontEndConfig(), OdometryConfig()
    if getattr(args, "config", None):
        fe, od = load_config_file(args.config, fe, od)
    fe = frontend_config_from_args(args, fe)
    od_changes = {}
    if getattr(args, "ransac_threshold", None) is not None:
        od_changes["ransac_threshold_px"] = args.ransac_threshold
    if getattr(args, "depth", False):
        od_changes["use_depth"] = True
    if getattr(args, "camera_height", None) is not None:
        od_changes["camera_height"] = args.camera_height
    od = dataclasses.replace(od, **od_changes)
    return PipelineConfig(frontend=fe, odometry=od)


def config_dict(cfg) -> dict:
    """Return a config dataclass as a JSON-ready dict (values JSON cannot hold written as strings)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


# ---------------------------------------------------------------------------------------------------- run

def open_source(args):
    """Open ``args.source`` as a sequence with the source options among ``args`` (depth, stride, topics, ...)."""
    from lightglue_ros.io.datasets import open_sequence

    kwargs = dict(use_depth=bool(getattr(args, "depth", False)), stride=getattr(args, "stride", 1) or 1,
                  max_frames=getattr(args, "max_frames", None))
    for name in ("image_topic", "info_topic", "depth_topic"):
        if getattr(args, name, None):
            kwargs[name] = getattr(args, name)
    if getattr(args, "intrinsics", None):
        kwargs["intrinsics"] = tuple(args.intrinsics)
    return open_sequence(args.source, **kwargs)


def cmd_run(args) -> int:
    """Run `run`."""
    cfg = pipeline_config_from_args(args)
    seq = open_source(args)
    if args.gt and not seq.has_gt:
        raise UserError(f"--gt: source {args.source} ({seq.kind}) has no ground truth")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = run_sequence(seq, cfg, progress=not args.quiet)
    evaluate.write_tum(out / "trajectory.tum", run.stamps, run.poses)
    write_frames_csv(out / "frames.csv", run.rows)
    summary = {"source": str(args.source), "sequence": {"name": seq.name, "kind": seq.kind, "frames": len(seq),
                                                        "has_depth": seq.has_depth, "has_gt": seq.has_gt},
               **summarize(run), "interrupted": run.interrupted, "config": config_dict(cfg), "metrics": None}
    if args.gt and not run.interrupted:
        res, why = evaluate.evaluate_run(seq, run, out)
        summary["metrics"] = res.to_dict() if res is not None else {"error": why}
    evaluate.write_json(out / "summary.json", summary)
    _print_run(summary, out)
    if run.interrupted:
        print(f"error: interrupted after {len(run.rows)} frames (files hold those)", file=sys.stderr)
        return 130
    return 0


def _num(v, spec: str) -> str:
    """Numbers from JSON-ready dicts: NaN was written as None ('n/a' here)."""
    return "n/a" if v is None else format(v, spec)


def _print_run(s: dict, out: Path) -> None:
    o = s["outcomes"]
    fps = s["fps_pipeline"]
    print(f"{s['frames']} frames: {o['processed']} processed, {o['skipped']} skipped, {o['failed']} failed; "
          f"{s['poses']} poses; {fps:.1f} frames/s (pipeline)" if fps else f"{s['frames']} frames")
    for outcome in ("skipped", "failed"):
        if s["reasons"].get(outcome):
            print(f"  {outcome}: " + ", ".join(f"{k} x{v}" for k, v in s["reasons"][outcome].items()))
    m = s.get("metrics")
    if m and "ape" in m:
        print(f"ATE rmse {_num(m['ape']['rmse'], '.4f')} ({m['alignment']}, {_num(m['ate_percent'], '.2f')} % of "
              f"path), RPE trans rmse {_num(m['rpe_trans']['rmse'], '.4f')}, RPE rot rmse "
              f"{_num(m['rpe_rot_deg']['rmse'], '.3f')} deg, scale {_num(m['scale'], '.4f')}")
        for note in m.get("notes") or ():
            print(f"  note: {note}")
    elif m:
        print(f"not evaluated: {m.get('error')}")
    print(f"wrote {out}/trajectory.tum, frames.csv, summary.json")


def add_run_parser(sub) -> None:
    """Add the `run` command."""
    p = sub.add_parser(
        "run", help="run the odometry over a sequence and write trajectory.tum, frames.csv, summary.json",
        description="Runs the pipeline over SOURCE. SOURCE: an image folder, a TUM / KITTI / EuRoC sequence folder, "
                    "a rosbag2, or synthetic[:frames=..,width=..,height=..,seed=..,motion=..,scene=room|drive,"
                    "cars=..]. Writes DIR/"
                    "trajectory.tum (stamp tx ty tz qx qy qz qw, camera pose in the first camera's frame), "
                    f"DIR/frames.csv (one row per frame: {', '.join(FRAME_COLUMNS)}) and DIR/summary.json.")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    add_frontend_args(p)
    p.add_argument("--ransac-threshold", type=float, metavar="PX", help="PoseLib RANSAC threshold in pixels")
    p.add_argument("--camera-height", type=float, metavar="M",
                   help="monocular ground robot: camera height above flat ground (m); makes the trajectory metric")
    p.add_argument("--stride", type=positive_int, default=1, metavar="K", help="use every K-th frame")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    p.add_argument("--depth", action="store_true", help="use the depth images (RGB-D: metric odometry)")
    p.add_argument("--gt", action="store_true", help="evaluate against the source's ground truth right away")
    p.add_argument("--config", metavar="FILE.yaml", help="settings file (frontend:/odometry: sections); flags win")
    p.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="camera intrinsics for sources without calibration (image folders)")
    p.add_argument("--image-topic", help="rosbag2: image topic")
    p.add_argument("--info-topic", help="rosbag2: CameraInfo topic")
    p.add_argument("--depth-topic", help="rosbag2: depth topic")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)


# ---------------------------------------------------------------------------------------------------- pair

def read_image_rgb(path: str) -> np.ndarray:
    """Read an image file as RGB uint8; a missing or unreadable file is a `UserError`."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise UserError(f"image not found: {p}")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"cannot read image {p} (not an image, or a format OpenCV does not know)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _camera(intr: Sequence[float], image: np.ndarray):
    from lightglue_ros.core.types import Camera

    fx, fy, cx, cy = (float(v) for v in intr)
    if fx <= 0 or fy <= 0:
        raise UserError(f"intrinsics: fx and fy must be positive, got {fx} {fy}")
    h, w = image.shape[:2]
    return Camera.pinhole(w, h, fx, fy, cx, cy)


def cmd_pair(args) -> int:
    """Run `pair`."""
    img0, img1 = read_image_rgb(args.img0), read_image_rgb(args.img1)
    cam0 = _camera(args.intrinsics, img0)
    cam1 = _camera(args.intrinsics1 or args.intrinsics, img1)
    fe_cfg = frontend_config_from_args(args)
    tr, rel, weak = match_pair(img0, img1, cam0, cam1, fe_cfg)
    inl = int(rel.num_inliers) if rel.ok else 0
    R = np.asarray(rel.R, dtype=float) if rel.ok else None
    t = np.asarray(rel.t, dtype=float).reshape(3) if rel.ok else None
    if t is not None:  # monocular: only the direction is known; PoseLib's refinement leaves |t| near, not at, 1
        t = t / max(np.linalg.norm(t), 1e-12)
    tel = tr.telemetry
    print(f"{len(tr.kpts0)} / {len(tr.kpts1)} keypoints, {tr.num_matches} matches, {inl} inliers, "
          f"stop layer {tel.stop_layer}/{tel.n_layers}, pruned {tel.pruned0 + tel.pruned1}, "
          f"extract {tel.extract_ms:.1f} ms, match {tel.match_ms:.1f} ms ({fe_cfg.backend}, {tel.device})")
    if rel.ok:
        print("pose of camera 1 in camera 0 (T_0_1: x0 = R x1 + t), R:")
        for row in R:
            print("  " + " ".join(f"{v:+.6f}" for v in row))
        print("t (unit length): " + " ".join(f"{v:+.6f}" for v in t))
        if weak:
            print(rel.reason)
    else:
        print(f"no relative pose: {rel.reason}")
    if args.plot:
        inlier_mask = np.asarray(rel.inliers, dtype=bool) if rel.ok and rel.inliers is not None else None
        plot_matches(args.plot, img0, img1, tr.points0, tr.points1, inlier_mask,
                     title=f"{tr.num_matches} matches, {inl} inliers")
    if args.json:
        payload = {"convention": "T_0_1: pose of camera 1 in camera 0, x0 = R x1 + t, |t| = 1",
                   "R": R.tolist() if R is not None else None, "t": t.tolist() if t is not None else None,
                   "weak": weak,
                   "matches": tr.num_matches, "inliers": inl, "stop_layer": int(tel.stop_layer),
                   "keypoints": [len(tr.kpts0), len(tr.kpts1)], "ok": bool(rel.ok), "reason": rel.reason or ""}
        print(json.dumps(payload))
    return 0


def add_pair_parser(sub) -> None:
    """Add the `pair` command."""
    p = sub.add_parser("pair", help="match two images and print their relative pose",
                       description="Extracts and matches IMG0 and IMG1 with the front end, estimates the relative "
                                   "pose with PoseLib (T_0_1, the pose of camera 1 in camera 0: x0 = R x1 + t, "
                                   "|t| = 1) and prints matches, inliers and the "
                                   "LightGlue stop layer. --json adds one JSON object on the last line.")
    p.add_argument("img0", metavar="IMG0")
    p.add_argument("img1", metavar="IMG1")
    p.add_argument("--intrinsics", type=float, nargs=4, required=True, metavar=("FX", "FY", "CX", "CY"),
                   help="pinhole intrinsics of IMG0 (and IMG1 unless --intrinsics1)")
    p.add_argument("--intrinsics1", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="intrinsics of IMG1 when they differ")
    add_frontend_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (R, t, matches, inliers, stop_layer)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the matches side by side")
    p.set_defaults(func=cmd_pair)


# ---------------------------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    """Build the `lightglue-ros` parser with all its commands."""
    parser = _Parser(prog=PROG, description="LightGlue visual odometry, offline tools (no ROS needed).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    add_run_parser(sub)
    evaluate.add_parser(sub)
    add_pair_parser(sub)
    from lightglue_ros.tools import bench

    bench.add_parser(sub)
    return parser


def _version() -> str:
    from lightglue_ros import __version__

    return __version__


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit code (2 and one line on stderr for a user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        return int(args.func(args) or 0)
    except LightGlueRosError as exc:  # the package's own errors: a mistake in the input, one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
