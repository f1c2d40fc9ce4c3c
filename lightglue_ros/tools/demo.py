"""``python -m lightglue_ros.tools.demo --out DIR`` (what ``make demo`` runs): the node on real ROS 2 topics.

A player node (this process) renders the synthetic scene with ground truth on the fly and publishes Image +
CameraInfo; ``matcher_node`` runs in its own process, as on a robot. Both use the shared-memory-only Fast DDS
profile and a ROS_DOMAIN_ID of their own, so nothing leaves this host. The player sends the next frame once
the node has finished the previous one (lock-step: the numbers measure the node, not DDS queueing). The player,
the launcher and the listener are `harness`'s, shared with the long-run benchmark and the node tests.

Writes into DIR: ``trajectory.png`` (estimate after Sim(3) alignment vs ground truth, from above),
``matches.png`` (one image received from ``matches/image``), ``estimate.tum`` / ``groundtruth.tum`` (camera
poses), ``summary.json`` and ``matcher_node.log``. Exit code 0 on success.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from lightglue_ros.tools.harness import (STAMP0, Collector, NodeProcess, Player, RosSide, play, poses_from_odom,
                                         ros_env, start_matcher, wait_until)


# ------------------------------------------------------------------------------------------------ results
@dataclass
class Summary:
    """The numbers of one demo run (summary.json): outcomes, matcher statistics, accuracy."""

    frames: int = 0
    seconds: float = 0.0
    frames_per_s: float = 0.0
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    dropped: int = 0
    odometry_messages: int = 0
    mean_stop_layer: float = float("nan")
    n_layers: int = 0
    mean_matches: float = float("nan")
    mean_inliers: float = float("nan")
    mean_total_ms: float = float("nan")
    ate_rmse: float = float("nan")
    ate_percent: float = float("nan")
    path_length: float = float("nan")
    sim3_scale: float = float("nan")
    device: str = ""
    skipped_reasons: Dict[str, int] = field(default_factory=dict)

    def lines(self) -> List[str]:
        return [
            f"frames            {self.frames} in {self.seconds:.1f} s ({self.frames_per_s:.2f} frames/s)",
            f"outcomes          processed {self.processed}, skipped {self.skipped}, failed {self.failed} "
            f"(dropped {self.dropped}) {self.skipped_reasons or ''}".rstrip(),
            f"odometry          {self.odometry_messages} messages",
            f"matcher           mean stop layer {self.mean_stop_layer:.2f} of {self.n_layers}, "
            f"{self.mean_matches:.0f} matches, {self.mean_inliers:.0f} inliers, {self.mean_total_ms:.0f} ms/frame "
            f"({self.device})",
            f"accuracy          ATE {self.ate_rmse:.4f} m RMSE = {self.ate_percent:.2f} % of a "
            f"{self.path_length:.2f} m path (Sim(3) alignment, scale {self.sim3_scale:.3f})",
        ]


# ------------------------------------------------------------------------------------------------ the run
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the demo's command line (``--help`` lists the options); refuse a run too small to judge."""
    p = argparse.ArgumentParser(prog="python -m lightglue_ros.tools.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (created)")
    p.add_argument("--frames", type=int, default=120, help="frames of the synthetic sequence")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--max-keypoints", type=int, default=256)
    p.add_argument("--motion", default="orbit", help="synthetic motion: orbit | forward | rotate | static")
    p.add_argument("--rgbd", action="store_true", help="publish depth too and run the node in RGB-D mode")
    p.add_argument("--domain-id", type=int, default=0, help="ROS_DOMAIN_ID (0 = pick one from the pid)")
    p.add_argument("--frame-timeout", type=float, default=60.0, help="seconds to wait for one frame's outcome")
    args = p.parse_args(argv)
    if args.frames < 3 or args.width < 64 or args.height < 64:
        p.error("need at least 3 frames of 64x64 pixels")
    return args


def node_params(args) -> Dict[str, object]:
    """Return the node's parameters for this demo: small, quick diagnostics for lock-step play, no TF."""
    return {"max_keypoints": args.max_keypoints, "diagnostics_period": 0.25, "use_depth": args.rgbd,
            "publish_tf": False}


def play_demo(args, player: Player, collector: Collector,
              proc: NodeProcess) -> tuple[int, float, Dict[float, np.ndarray]]:
    """Publish every frame lock-step; returns (frames sent, seconds, GT poses by stamp)."""
    from lightglue_ros.io.datasets import synthetic_sequence
    from lightglue_ros.io.synthetic import SyntheticConfig

    cfg = SyntheticConfig(frames=args.frames, width=args.width, height=args.height, motion=args.motion,
                          depth=args.rgbd)
    if not player.wait_subscribed(120, depth=args.rgbd, process=proc):
        if not proc.alive():
            raise RuntimeError(f"matcher_node exited with {proc.proc.returncode} before the first frame")
        raise RuntimeError("the matcher never subscribed to image/camera_info")
    time.sleep(0.5)  # let both ends finish matching their endpoints
    gt: Dict[float, np.ndarray] = {}

    def frames():
        for i, frame in enumerate(synthetic_sequence(cfg)):  # rendered on the fly while the node works
            gt[STAMP0 + frame.stamp] = frame.gt_pose
            if i == args.frames // 2:
                collector.subscribe_match_image()  # the node draws matches/image only while someone listens
            yield frame

    def progress(i: int, _stamp: float) -> None:
        if collector.match_images:
            collector.unsubscribe_match_image()  # one picture is enough
        if (i + 1) % 10 == 0 or i + 1 == args.frames:
            d = collector.diagnostics_values()
            rate = (i + 1) / (time.monotonic() - t0)
            print(f"frame {i + 1:4d}/{args.frames}  {rate:5.2f} frames/s  state {str(d.get('state', '?')):12s} "
                  f"matches {_num(d, 'matches_mean'):5.0f}  inliers {_num(d, 'inliers_mean'):5.0f}  "
                  f"stop layer {_num(d, 'stop_layer_mean'):4.1f}  {_num(d, 'total_ms'):4.0f} ms", flush=True)

    t0 = time.monotonic()
    sent = play(player, collector, frames(), frame_timeout=args.frame_timeout, on_frame=progress, process=proc,
                with_depth=args.rgbd)
    return len(sent), time.monotonic() - t0, gt


def _num(d: Dict[str, str], key: str) -> float:
    try:
        return float(d[key])
    except (KeyError, ValueError):
        return float("nan")


def _weighted(diags: List[Dict[str, str]], key: str) -> float:
    """Mean of a per-period diagnostics value, weighted by frames processed in each period."""
    num = den = 0.0
    prev = 0
    for d in diags:
        n = int(d.get("processed", 0)) - prev
        prev = int(d.get("processed", 0))
        if n > 0 and key in d:
            num += n * float(d[key])
            den += n
    return num / den if den else float("nan")


def summarise(args, collector: Collector, sent: int, seconds: float, gt: Dict[float, np.ndarray],
              out: Path) -> Summary:
    """Return the numbers of the run.

    Writes estimate.tum, groundtruth.tum and trajectory.png when there is a trajectory.
    """
    from lightglue_ros.core.lie import transform_from_xyzq
    from lightglue_ros.eval import metrics as ev
    from lightglue_ros.eval.viz import plot_topdown
    from lightglue_ros.geometry.frames import OPTICAL_TO_BODY_XYZQ

    wait_until(lambda: collector.outcomes() >= sent, 5.0, poll=0.005)
    d = collector.diagnostics_values()
    diags = collector.diagnostics_history()
    with collector.lock:
        odom, counts = list(collector.odom), [m.width for m in collector.matches]
    s = Summary(frames=sent, seconds=seconds, frames_per_s=sent / seconds if seconds else 0.0,
                processed=int(d.get("processed", 0)), skipped=int(d.get("skipped", 0)),
                failed=int(d.get("failed", 0)), dropped=int(d.get("dropped", 0)), odometry_messages=len(odom),
                mean_stop_layer=_weighted(diags, "stop_layer_mean"), mean_inliers=_weighted(diags, "inliers_mean"),
                mean_total_ms=_weighted(diags, "total_ms"), mean_matches=float(np.mean(counts)) if counts else 0.0,
                device=str(d.get("device", "")))
    s.skipped_reasons = {k.split(".", 1)[1]: int(v) for k, v in d.items() if k.startswith(("skipped.", "failed."))}
    s.n_layers = int(d.get("layers", 0))
    # Odometry is T_odom_base; back to camera poses in the first camera frame (the node's default extrinsic).
    est = poses_from_odom(odom, transform_from_xyzq(OPTICAL_TO_BODY_XYZQ))
    stamps = sorted(t for t in est if t in gt)
    if len(stamps) >= 3:
        ev.write_tum(out / "estimate.tum", stamps, [est[t] for t in stamps])
        ev.write_tum(out / "groundtruth.tum", sorted(gt), [gt[t] for t in sorted(gt)])
        est_traj = ev.trajectory_from_poses(stamps, [est[t] for t in stamps], "estimate")
        gt_traj = ev.trajectory_from_poses(sorted(gt), [gt[t] for t in sorted(gt)], "ground truth")
        try:
            result, est_aligned, gt_assoc = ev.evaluate(est_traj, gt_traj, mono=not args.rgbd)
        except Exception as exc:  # noqa: BLE001 - evo raises its own types (degenerate alignment, ...)
            print(f"demo: accuracy not computed: {type(exc).__name__}: {exc}")
            return s
        s.ate_rmse, s.ate_percent, s.path_length = result.ape.rmse, result.ate_percent, result.path_length
        s.sim3_scale = result.scale
        plot_topdown(out / "trajectory.png", est_aligned, gt_assoc,
                     f"lightglue_matcher on the synthetic scene: ATE {result.ate_percent:.2f} % of path")
    return s


def save_match_image(collector: Collector, out: Path) -> bool:
    """Save the first matches/image received -> out/matches.png."""
    import cv2

    from lightglue_ros.io.msg_decode import image_to_numpy

    if not collector.match_images:
        return False
    rgb = image_to_numpy(collector.match_images[0])
    return bool(cv2.imwrite(str(out / "matches.png"), rgb[..., ::-1]))


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; 0 when odometry, accuracy, a matches image and a clean node exit all came out."""
    args = parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    domain = args.domain_id or 1 + os.getpid() % 230
    env = ros_env(domain)
    os.environ.update({k: env[k] for k in ("FASTDDS_DEFAULT_PROFILES_FILE", "ROS_DOMAIN_ID", "RMW_IMPLEMENTATION")})
    print(f"demo: {args.frames} synthetic frames {args.width}x{args.height} ({args.motion}, "
          f"{'RGB-D' if args.rgbd else 'monocular'}), ROS_DOMAIN_ID {domain}, DDS shared memory only", flush=True)
    proc = start_matcher(domain, node_params(args), log_path=out / "matcher_node.log")
    ros = RosSide(domain, "lightglue_demo_player")
    code = 1
    try:
        collector = Collector(ros, topics=("odom", "matches", "diagnostics"))
        player = Player(ros)
        sent, seconds, gt = play_demo(args, player, collector, proc)
        summary = summarise(args, collector, sent, seconds, gt, out)
        have_image = save_match_image(collector, out)
        exit_code = proc.stop(timeout=20.0)
        print("summary:")
        for line in summary.lines():
            print("  " + line)
        (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2, default=str) + "\n")
        ok = summary.odometry_messages > 0 and np.isfinite(summary.ate_rmse) and exit_code == 0 and have_image
        if exit_code != 0:
            print(f"demo: matcher_node exited with {exit_code} (see {out / 'matcher_node.log'})")
        if not have_image:
            print("demo: no image arrived on matches/image")
        print(f"output: {out} (trajectory.png, matches.png, estimate.tum, groundtruth.tum, summary.json, "
              f"matcher_node.log)")
        code = 0 if ok else 1
    except KeyboardInterrupt:
        print("demo: interrupted")
        code = 130
    except (RuntimeError, TimeoutError) as exc:
        print(f"demo failed: {exc}\n--- matcher_node.log (tail) ---\n{_tail(out / 'matcher_node.log')}")
    finally:
        proc.stop(timeout=20.0)
        ros.close()
    return code


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    sys.exit(main())
