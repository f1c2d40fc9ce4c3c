"""``python -m lightglue_ros.tools.longrun``: the node's memory, threads and latency over thousands of frames.

Hours of use in minutes.

``matcher_node`` runs in its own process, as on a robot; this process is the camera. It renders a short synthetic
sequence once and plays it back and forth (the motion stays continuous; stamps always increase: this is not a bag
loop), lock-step: the next frame goes out once the node has finished the previous one, so latency is the node's
own work plus DDS, not queueing. Per frame: latency = the odometry's arrival time - the image's publish time (both
on this process's monotonic clock). Every ``--sample-every`` frames the node's resident memory and thread count
are read with psutil.

``--realtime`` plays like a camera instead: each frame goes out at its time (``--fps`` on the wall clock) whether
or not the node has finished the last one, so a node slower than the camera drops frames (the node counts them as
skipped, with the reason). Latency then includes waiting for the node.

Pass criteria (printed, and the exit code: 0 pass, 1 fail, 2 could not run):
- memory: resident memory after the warm-up grows by less than ``--max-growth-mb`` (50 MB);
- threads: the thread count stays constant after the warm-up;
- latency: p50 / p95 / p99 of the last block of frames (1000 at the default length) at most 25 / 50 / 100 % above
  the first block's (a faster last block, e.g. after a slow warm-up, passes). Other load on the machine widens the
  tails; compare runs on an idle machine;
- dropped (``--realtime`` only): frames without odometry at most ``--max-dropped`` of those sent (10 %).

DDS stays on this host: the shared-memory-only Fast DDS profile and a ROS_DOMAIN_ID of its own; the player, the
launcher and the listener are `harness`'s, shared with the demo and the node tests.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from lightglue_ros.tools.args import PRECISIONS
from lightglue_ros.tools.harness import (STAMP0, Collector, NodeProcess, Player, RosSide, ros_env, start_matcher,
                                         wait_until)

LATENCY_TOLERANCE = {"p50": 0.25, "p95": 0.5, "p99": 1.0}  # last block vs first block, relative


# ------------------------------------------------------------------------------------------------ results
@dataclass
class Sample:
    """One reading of the node process: frames finished, seconds since the start, resident memory, threads."""

    frame: int  # frames finished when sampled
    seconds: float
    rss_mb: float
    threads: int


@dataclass
class Block:
    """A block of frames: its latency percentiles and the node's memory and threads at its end."""

    first: int  # 1-based frame range
    last: int
    latencies: int  # frames with an odometry message (a latency)
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rss_mb: float  # at the block's end
    threads: int


@dataclass
class Report:
    """The whole run: settings, outcomes, memory after the warm-up, latency blocks, samples and the checks."""

    frames: int
    width: int
    height: int
    backend: str
    max_keypoints: int
    torch_threads: int
    sequence: int
    warmup: int
    seconds: float = 0.0
    outcomes: Dict[str, int] = field(default_factory=dict)  # processed / skipped / failed and reasons
    rss_warm_mb: float = float("nan")
    rss_end_mb: float = float("nan")
    rss_max_after_warm_mb: float = float("nan")
    growth_mb: float = float("nan")
    threads_after_warm: List[int] = field(default_factory=list)
    blocks: List[Block] = field(default_factory=list)
    samples: List[Sample] = field(default_factory=list)
    checks: Dict[str, bool] = field(default_factory=dict)
    realtime: bool = False
    fps: float = 0.0
    dropped: int = 0  # frames sent that got no odometry


def percentiles(values_ms: Sequence[float]) -> Tuple[float, float, float]:
    """Return p50, p95 and p99 of ``values_ms`` (three NaNs when there are none)."""
    if not len(values_ms):
        return (float("nan"),) * 3
    p = np.percentile(np.asarray(values_ms, np.float64), [50, 95, 99])
    return float(p[0]), float(p[1]), float(p[2])


def make_blocks(latency_ms: Dict[int, float], samples: List[Sample], frames: int, size: int) -> List[Block]:
    """Latency percentiles and the last memory sample per block of ``size`` frames."""
    blocks = []
    for start in range(0, frames, size):
        end = min(frames, start + size)
        lat = [latency_ms[i] for i in range(start, end) if i in latency_ms]
        inside = [s for s in samples if s.frame <= end] or samples[:1]
        last = inside[-1] if inside else Sample(0, 0.0, float("nan"), 0)
        blocks.append(Block(start + 1, end, len(lat), *percentiles(lat), rss_mb=last.rss_mb, threads=last.threads))
    return blocks


def judge(report: Report, max_growth_mb: float, max_dropped: float = 0.1) -> Dict[str, bool]:
    """Check the pass criteria of the module docstring: memory, threads, latency (and drops) -> passed or not."""
    first, last = report.blocks[0], report.blocks[-1]
    # One-sided: degradation is what a long run must not show; getting faster (warm caches) is fine.
    latency_ok = all(
        np.isfinite(getattr(first, f"{k}_ms")) and np.isfinite(getattr(last, f"{k}_ms"))
        and getattr(last, f"{k}_ms") <= (1.0 + tol) * getattr(first, f"{k}_ms")
        for k, tol in LATENCY_TOLERANCE.items())
    checks = {"memory": bool(report.rss_max_after_warm_mb - report.rss_warm_mb < max_growth_mb),
              "threads": len(set(report.threads_after_warm)) == 1, "latency": bool(latency_ok)}
    if report.realtime:
        checks["dropped"] = report.dropped <= max_dropped * report.frames
    return checks


def summarise(report: Report, samples: List[Sample], latency_ms: Dict[int, float], block: int,
              max_growth_mb: float, max_dropped: float = 0.1) -> Report:
    """Fill ``report`` in: the memory after the warm-up, the latency blocks, the drops and the checks; return it."""
    report.samples = samples
    warm = [s for s in samples if s.frame >= report.warmup]
    if warm:
        report.rss_warm_mb, report.rss_end_mb = warm[0].rss_mb, warm[-1].rss_mb
        report.rss_max_after_warm_mb = max(s.rss_mb for s in warm)
        report.growth_mb = report.rss_end_mb - report.rss_warm_mb
        report.threads_after_warm = sorted({s.threads for s in warm})
    report.blocks = make_blocks(latency_ms, samples, report.frames, block)
    report.dropped = report.frames - len(latency_ms)
    report.checks = judge(report, max_growth_mb, max_dropped)
    return report


def table(report: Report) -> List[str]:
    """Render the report as lines to print: the run, one row per block, then each check's verdict."""
    r = report
    lines = [f"long run: {r.frames} frames {r.width}x{r.height}, backend {r.backend} ({r.max_keypoints} keypoints, "
             f"{r.torch_threads} torch thread{'s' if r.torch_threads != 1 else ''}), a {r.sequence}-frame sequence "
             f"back and forth, {r.seconds:.0f} s ({r.frames / max(r.seconds, 1e-9):.1f} frames/s"
             + (f", played in real time at {r.fps:g} Hz" if r.realtime else ", lock-step") + ")",
             f"outcomes: {', '.join(f'{k} {v}' for k, v in r.outcomes.items())}",
             "",
             f"{'frames':>13}  {'with odom':>9}  {'p50 ms':>7}  {'p95 ms':>7}  {'p99 ms':>7}  {'RSS MB':>7}  "
             f"{'threads':>7}"]
    for b in r.blocks:
        lines.append(f"{b.first:>6}-{b.last:<6}  {b.latencies:>9}  {b.p50_ms:7.1f}  {b.p95_ms:7.1f}  {b.p99_ms:7.1f}  "
                     f"{b.rss_mb:7.1f}  {b.threads:>7}")
    first, last = r.blocks[0], r.blocks[-1]
    verdict = {True: "OK", False: "FAIL"}
    lines += ["",
              f"memory   RSS {r.rss_warm_mb:.1f} MB after the warm-up ({r.warmup} frames), {r.rss_end_mb:.1f} MB at "
              f"the end, at most {r.rss_max_after_warm_mb:.1f} MB: growth {r.growth_mb:+.1f} MB "
              f"(max {r.rss_max_after_warm_mb - r.rss_warm_mb:+.1f} MB) -> {verdict[r.checks['memory']]}",
              f"threads  after the warm-up: {', '.join(map(str, r.threads_after_warm))} -> "
              f"{verdict[r.checks['threads']]}",
              f"latency  first vs last block: p50 {first.p50_ms:.1f} / {last.p50_ms:.1f} ms, p95 {first.p95_ms:.1f} / "
              f"{last.p95_ms:.1f} ms, p99 {first.p99_ms:.1f} / {last.p99_ms:.1f} ms -> {verdict[r.checks['latency']]}"]
    if r.realtime:
        lines.append(f"dropped  {r.dropped} of {r.frames} frames without odometry ({r.dropped / max(r.frames, 1):.1%})"
                     f" -> {verdict[r.checks['dropped']]}")
    return lines


# ------------------------------------------------------------------------------------------------ the camera side
class PingPong:
    """A short rendered sequence played back and forth: frame i of the run -> a rendered frame."""

    def __init__(self, frames: int, width: int, height: int, step: float):
        from lightglue_ros.io.datasets import synthetic_sequence
        from lightglue_ros.io.synthetic import SyntheticConfig

        cfg = SyntheticConfig(frames=frames, width=width, height=height, depth=False, motion="orbit", step=step)
        self.frames = list(synthetic_sequence(cfg))

    def __getitem__(self, i: int):
        n = len(self.frames)
        if n == 1:
            return self.frames[0]
        k = i % (2 * n - 2)
        return self.frames[k if k < n else 2 * n - 2 - k]


def _count(values: Dict[str, object], key: str) -> int:
    try:
        return int(values.get(key, 0))
    except (TypeError, ValueError):
        return 0


def sample(proc: NodeProcess, frame: int, t0: float) -> Sample:
    """Read the node's resident memory and thread count now."""
    import psutil

    p = psutil.Process(proc.proc.pid)
    return Sample(frame, time.monotonic() - t0, p.memory_info().rss / 2**20, p.num_threads())


def play_realtime(args, player: Player, collector: Collector, proc: NodeProcess,
                  seq: PingPong) -> Tuple[Dict[int, float], List[Sample], float]:
    """Every frame at its time on the wall clock, as a camera; (latency ms by frame, memory samples, seconds)."""
    sent: Dict[int, float] = {}
    samples: List[Sample] = []
    t0 = time.monotonic()
    for i in range(args.frames):
        msgs = player.messages(seq[i], stamp=STAMP0 + i / args.fps)  # built before its send time
        delay = t0 + i / args.fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent[i] = player.send(msgs)
        if i % args.sample_every == 0:
            samples.append(sample(proc, i, t0))
        if not proc.alive():
            raise RuntimeError(f"matcher_node exited with {proc.proc.returncode} at frame {i}")
        if (i + 1) % args.progress_every == 0:
            got = sum(collector.has_odom(STAMP0 + k / args.fps) for k in range(i + 1))
            print(f"frame {i + 1:6d}/{args.frames}  {got} with odometry  RSS {samples[-1].rss_mb:7.1f} MB", flush=True)
    # Every frame gets an outcome: odometry, or a skip / failure in the node's counts.
    collector.wait(lambda: collector.outcomes() >= args.frames, args.frame_timeout)
    seconds = time.monotonic() - t0
    latency = {}
    for i, t in sent.items():
        arrival = collector.odom_arrival(STAMP0 + i / args.fps)
        if arrival is not None:
            latency[i] = (arrival - t) * 1e3
    return latency, samples, seconds


def play(args, player: Player, collector: Collector, proc: NodeProcess,
         seq: PingPong) -> Tuple[Dict[int, float], List[Sample], float]:
    """Every frame lock-step; (latency ms by frame, memory samples, seconds)."""
    latency: Dict[int, float] = {}
    samples: List[Sample] = []
    t0 = time.monotonic()
    for i in range(args.frames):
        if i % args.sample_every == 0:
            samples.append(sample(proc, i, t0))
        frame, stamp = seq[i], STAMP0 + i / args.fps
        msgs = player.messages(frame, stamp=stamp)  # built before the clock starts
        sent = player.send(msgs)
        # Every frame gets an outcome (lock-step drops none): this frame's odometry, or the count in diagnostics.
        done = collector.wait(lambda: collector.has_odom(stamp) or collector.outcomes() >= i + 1, args.frame_timeout)
        arrival = collector.odom_arrival(stamp)
        if not proc.alive():
            raise RuntimeError(f"matcher_node exited with {proc.proc.returncode} at frame {i}")
        if not done:
            raise RuntimeError(f"no outcome for frame {i} within {args.frame_timeout:.0f} s")
        if arrival is not None:
            latency[i] = (arrival - sent) * 1e3
        if (i + 1) % args.progress_every == 0:
            recent = [latency[k] for k in range(max(0, i + 1 - args.progress_every), i + 1) if k in latency]
            p50 = percentiles(recent)[0]
            last = samples[-1]
            print(f"frame {i + 1:6d}/{args.frames}  {(i + 1) / (time.monotonic() - t0):5.1f} frames/s  "
                  f"p50 {p50:6.1f} ms  RSS {last.rss_mb:7.1f} MB  threads {last.threads}  "
                  f"state {collector.diagnostics_values().get('state', '?')}", flush=True)
    # The outcome of the last frame may still be on its way in the diagnostics.
    collector.wait(lambda: collector.outcomes() >= args.frames, 5.0)
    samples.append(sample(proc, args.frames, t0))
    return latency, samples, time.monotonic() - t0


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the long run's command line (``--help`` lists the options); fill in the warm-up and block size."""
    p = argparse.ArgumentParser(prog="python -m lightglue_ros.tools.longrun", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=5000, help="frames to play (default 5000)")
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--backend", default="lightglue", choices=("lightglue", "xfeat", "orb", "sift"))
    p.add_argument("--max-keypoints", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads of the node (num_threads)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="the node's precision parameter (default auto)")
    p.add_argument("--sequence", type=int, default=120, help="rendered frames, played back and forth")
    p.add_argument("--step", type=float, default=0.05, help="metres per frame of the synthetic orbit")
    p.add_argument("--fps", type=float, default=10.0, help="stamp rate of the frames")
    p.add_argument("--warmup", type=int, default=0, help="frames before memory is judged (default 10%%, <= 500)")
    p.add_argument("--block", type=int, default=0, help="frames per latency block (default 1000, or frames/5)")
    p.add_argument("--sample-every", type=int, default=50, help="frames between memory/thread samples")
    p.add_argument("--progress-every", type=int, default=250)
    p.add_argument("--max-growth-mb", type=float, default=50.0)
    p.add_argument("--realtime", action="store_true",
                   help="play at --fps on the wall clock without waiting for the node (a camera); judge drops")
    p.add_argument("--max-dropped", type=float, default=0.1,
                   help="--realtime: largest share of frames without odometry that passes (default 0.1)")
    p.add_argument("--frame-timeout", type=float, default=60.0)
    p.add_argument("--domain-id", type=int, default=0, help="ROS_DOMAIN_ID (0 = pick one from the pid)")
    p.add_argument("--log", type=Path, default=None, help="matcher_node log file (default: a temporary file)")
    p.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    args = p.parse_args(argv)
    if args.frames < 10 or args.width < 32 or args.height < 32 or args.sequence < 2:
        p.error("need at least 10 frames of 32x32 pixels and a sequence of 2 frames")
    args.warmup = args.warmup or min(500, args.frames // 10)
    args.block = args.block or (1000 if args.frames >= 5000 else max(1, args.frames // 5))
    return args


def node_params(args) -> Dict[str, object]:
    """Return the node's parameters for the run."""
    return {"backend": args.backend, "max_keypoints": args.max_keypoints, "num_threads": args.threads,
            "precision": args.precision, "diagnostics_period": 0.1, "qos": "reliable"}


def run(args) -> Report:
    """Start the node, play, judge; the node is stopped whatever happens."""
    domain = args.domain_id or 1 + (os.getpid() * 7) % 230
    env = ros_env(domain)
    os.environ.update({k: env[k] for k in ("FASTDDS_DEFAULT_PROFILES_FILE", "ROS_DOMAIN_ID", "RMW_IMPLEMENTATION")})
    log_path = args.log or Path(os.environ.get("TMPDIR", "/tmp")) / f"longrun_matcher_{os.getpid()}.log"
    print(f"longrun: {args.frames} frames {args.width}x{args.height}, backend {args.backend}, ROS_DOMAIN_ID {domain}, "
          f"DDS shared memory only; node log {log_path}", flush=True)
    seq = PingPong(args.sequence, args.width, args.height, args.step)
    proc = start_matcher(domain, node_params(args), log_path=log_path)
    ros = RosSide(domain, "lightglue_longrun_player")
    try:
        # Only odom and diagnostics, and only the recent ones: hours of messages must not grow this process.
        collector = Collector(ros, topics=("odom", "diagnostics"), keep=100)
        player = Player(ros)
        if not wait_until(lambda: (player.subscribed() and bool(collector.diagnostics)) or not proc.alive(), 180,
                          poll=0.05):
            raise RuntimeError("the node never subscribed to image/camera_info")
        if not proc.alive():
            raise RuntimeError(f"matcher_node exited with {proc.proc.returncode} before the first frame")
        time.sleep(0.5)  # both ends finish matching their endpoints
        latency, samples, seconds = (play_realtime if args.realtime else play)(args, player, collector, proc, seq)
        report = Report(args.frames, args.width, args.height, args.backend, args.max_keypoints, args.threads,
                        args.sequence, args.warmup, seconds, realtime=args.realtime, fps=args.fps)
        d = collector.diagnostics_values()
        report.outcomes = {k: _count(d, k) for k in ("processed", "skipped", "failed")}
        report.outcomes.update({k: _count(d, k) for k in sorted(d)
                                if k.startswith(("skipped.", "failed.", "reset.", "event."))})
        return summarise(report, samples, latency, args.block, args.max_growth_mb, args.max_dropped)
    finally:
        code = proc.stop(timeout=20.0)
        if code != 0:
            print(f"longrun: matcher_node exited with {code} (log {log_path})", flush=True)
        ros.close()


def main(argv: Optional[List[str]] = None) -> int:
    """Run the long run; 0 pass, 1 fail, 2 could not run."""
    args = parse_args(argv)
    try:
        report = run(args)
    except KeyboardInterrupt:
        print("longrun: interrupted")
        return 2
    except RuntimeError as exc:
        print(f"longrun failed: {exc}")
        return 2
    print("\n".join(table(report)), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(report), indent=1, default=float) + "\n")
    return 0 if all(report.checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
