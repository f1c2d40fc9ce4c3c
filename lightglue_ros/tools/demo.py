"""``python -m lightglue_ros.tools.demo --out DIR`` (what ``make demo`` runs): the node on real ROS 2 topics.

A player node (this process) renders the synthetic scene with ground truth on the fly and publishes Image +
CameraInfo; ``matcher_node`` runs in its own process, as on a robot. Both use the shared-memory-only Fast DDS
profile and a ROS_DOMAIN_ID of their own, so nothing leaves this host. The player sends the next frame once
the node has finished the previous one (lock-step: the numbers measure the node, not DDS queueing).

Writes into DIR: ``trajectory.png`` (estimate after Sim(3) alignment vs ground truth, from above),
``matches.png`` (one image received from ``matches/image``), ``estimate.tum`` / ``groundtruth.tum`` (camera
poses), ``summary.json`` and ``matcher_node.log``. Exit code 0 on success.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

STAMP0 = 1000.0  # first image stamp (s): 0 reads as "unset" to many ROS tools
PACKAGE = "lightglue_ros"


# ------------------------------------------------------------------------------------------------ environment
def shm_profile() -> Path:
    """The SHM-only Fast DDS profile: the source tree's, else the installed share copy."""
    candidates = [Path(__file__).resolve().parents[2] / "config" / "fastdds_shm_only.xml",
                  Path(sys.prefix) / "share" / PACKAGE / "config" / "fastdds_shm_only.xml"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "config" / "fastdds_shm_only.xml")
    except Exception:  # noqa: BLE001 - not in an ament index: the other candidates remain
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"fastdds_shm_only.xml not found (looked in {', '.join(map(str, candidates))})")


def demo_env(domain_id: int, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """DDS on shared memory only, on a domain of our own (default discovery would multicast on the network).
    Used by the demo, the long-run benchmark and the node tests."""
    env = dict(os.environ if base is None else base)
    env.update(FASTDDS_DEFAULT_PROFILES_FILE=str(shm_profile()), ROS_DOMAIN_ID=str(domain_id),
               RMW_IMPLEMENTATION=env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"), PYTHONUNBUFFERED="1")
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; the profile already keeps DDS on this host
    return env


def matcher_command() -> List[str]:
    """This interpreter's console script; ``LIGHTGLUE_ROS_NODE_CMD`` (shell words) overrides it."""
    override = os.environ.get("LIGHTGLUE_ROS_NODE_CMD")
    if override:
        return override.split()
    script = Path(sys.executable).parent / "matcher_node"
    return [str(script)] if script.exists() else [sys.executable, "-m", f"{PACKAGE}.ros.node"]


# ------------------------------------------------------------------------------------------------ results
@dataclass
class Summary:
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
            f"accuracy          ATE {self.ate_rmse:.4f} m RMSE = {self.ate_percent:.2f} % of a {self.path_length:.2f} m "
            f"path (Sim(3) alignment, scale {self.sim3_scale:.3f})",
        ]


class Listener:
    """What the demo hears from the node: odom, match counts, diagnostics, one matches image."""

    def __init__(self, node):
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import PointCloud2

        self.node = node
        self.lock = threading.Lock()
        self.odom: List = []
        self.match_counts: List[int] = []
        self.diagnostics: List[Dict[str, str]] = []
        self.match_image = None
        self._image_sub = None
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(Odometry, "odom", self._on_odom, qos)
        node.create_subscription(PointCloud2, "matches", lambda m: self._append(self.match_counts, m.width), qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, qos)

    def _append(self, store: list, item) -> None:
        with self.lock:
            store.append(item)

    def _on_odom(self, msg) -> None:
        self._append(self.odom, msg)

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("lightglue_matcher"):
                self._append(self.diagnostics, {kv.key: kv.value for kv in status.values})

    def want_match_image(self) -> None:
        """Subscribe to matches/image until one arrives (the node draws it only while someone listens)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        if self._image_sub is None and self.match_image is None:
            self._image_sub = self.node.create_subscription(
                Image, "matches/image", self._on_image, QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))

    def _on_image(self, msg) -> None:
        if self.match_image is None:
            self.match_image = msg

    def drop_image_subscription(self) -> None:
        if self._image_sub is not None and self.match_image is not None:
            self.node.destroy_subscription(self._image_sub)
            self._image_sub = None

    def latest(self) -> Dict[str, str]:
        with self.lock:
            return dict(self.diagnostics[-1]) if self.diagnostics else {}

    def received(self) -> int:
        return int(self.latest().get("received", 0))

    def outcomes(self) -> int:
        d = self.latest()
        return sum(int(d.get(k, 0)) for k in ("processed", "skipped", "failed"))

    def has_odom(self, stamp_msg) -> bool:
        with self.lock:
            return any(m.header.stamp == stamp_msg for m in self.odom[-3:])


def wait_until(predicate, timeout: float, poll: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` s pass; its last value (used by the demo, the long run and
    the node tests)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


# ------------------------------------------------------------------------------------------------ the run
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
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


def start_matcher(args, env, log_path: Path) -> subprocess.Popen:
    params = {"max_keypoints": args.max_keypoints, "diagnostics_period": 0.25, "use_depth": args.rgbd,
              "publish_tf": False}
    cmd = matcher_command() + ["--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    log = open(log_path, "wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop_matcher(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


class Player:
    def __init__(self, node, rgbd: bool):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.image = node.create_publisher(Image, "image", qos)
        self.info = node.create_publisher(CameraInfo, "camera_info", qos)
        self.depth = node.create_publisher(Image, "depth", qos) if rgbd else None

    def subscribed(self) -> bool:
        pubs = [self.image, self.info] + ([self.depth] if self.depth else [])
        return all(p.get_subscription_count() > 0 for p in pubs)

    def publish(self, frame, stamp: float):
        from std_msgs.msg import Header

        from lightglue_ros.ros import msgs as conv

        header = Header(stamp=conv.sec_to_stamp(stamp), frame_id="camera_optical_frame")
        self.info.publish(conv.camera_info_msg(frame.camera, header))
        if self.depth is not None:
            self.depth.publish(conv.numpy_to_image(frame.depth, "32FC1", header))
        self.image.publish(conv.numpy_to_image(frame.image, "rgb8", header))
        return header.stamp


def play(args, node, listener: Listener, proc: subprocess.Popen) -> tuple[int, float, Dict[float, np.ndarray]]:
    """Publish every frame lock-step; returns (frames sent, seconds, GT poses by stamp)."""
    from lightglue_ros.io.datasets import synthetic_sequence
    from lightglue_ros.io.synthetic import SyntheticConfig

    cfg = SyntheticConfig(frames=args.frames, width=args.width, height=args.height, motion=args.motion,
                          depth=args.rgbd)
    player = Player(node, args.rgbd)
    if not wait_until(lambda: player.subscribed() or proc.poll() is not None, 120, poll=0.005):
        raise RuntimeError("the matcher never subscribed to image/camera_info")
    if proc.poll() is not None:
        raise RuntimeError(f"matcher_node exited with {proc.returncode} before the first frame")
    time.sleep(0.5)  # let both ends finish matching their endpoints
    gt: Dict[float, np.ndarray] = {}
    t0, sent = time.monotonic(), 0
    for i, frame in enumerate(synthetic_sequence(cfg)):  # rendered on the fly while the node works
        stamp = STAMP0 + frame.stamp
        gt[stamp] = frame.gt_pose
        done_before, received_before = listener.outcomes(), listener.received()
        stamp_msg = player.publish(frame, stamp)
        sent += 1
        if i == args.frames // 2:
            listener.want_match_image()
        finished = _wait_outcome(listener, player, frame, stamp, stamp_msg, done_before, received_before, proc,
                                 args.frame_timeout)
        if proc.poll() is not None:
            raise RuntimeError(f"matcher_node exited with {proc.returncode} at frame {i}")
        if not finished:
            raise RuntimeError(f"no outcome for frame {i} within {args.frame_timeout:.0f} s")
        listener.drop_image_subscription()
        if (i + 1) % 10 == 0 or i + 1 == args.frames:
            d = listener.latest()
            rate = (i + 1) / (time.monotonic() - t0)
            print(f"frame {i + 1:4d}/{args.frames}  {rate:5.2f} frames/s  state {d.get('state', '?'):12s} "
                  f"matches {_num(d, 'matches_mean'):5.0f}  inliers {_num(d, 'inliers_mean'):5.0f}  "
                  f"stop layer {_num(d, 'stop_layer_mean'):4.1f}  {_num(d, 'total_ms'):4.0f} ms", flush=True)
    return sent, time.monotonic() - t0, gt


def _wait_outcome(listener: Listener, player: Player, frame, stamp: float, stamp_msg, done_before: int,
                  received_before: int, proc, timeout: float) -> bool:
    """Until the node has an outcome for this frame; resend it if the node never heard it (a best-effort reader
    drops samples from a writer it has not matched yet, right after discovery)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if wait_until(lambda: listener.has_odom(stamp_msg) or listener.outcomes() > done_before
                      or proc.poll() is not None, min(2.0, end - time.monotonic()), poll=0.005):
            return True
        if listener.received() <= received_before:
            player.publish(frame, stamp)
    return False


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


def summarise(args, listener: Listener, sent: int, seconds: float, gt: Dict[float, np.ndarray], out: Path) -> Summary:
    from lightglue_ros.core.lie import transform_from_xyzq
    from lightglue_ros.eval import metrics as ev
    from lightglue_ros.eval.viz import plot_topdown
    from lightglue_ros.geometry.frames import OPTICAL_TO_BODY_XYZQ
    from lightglue_ros.io.msg_decode import stamp_to_sec
    from lightglue_ros.ros import msgs as conv

    wait_until(lambda: listener.outcomes() >= sent, 5.0, poll=0.005)
    d = listener.latest()
    with listener.lock:
        diags, odom, counts = list(listener.diagnostics), list(listener.odom), list(listener.match_counts)
    s = Summary(frames=sent, seconds=seconds, frames_per_s=sent / seconds if seconds else 0.0,
                processed=int(d.get("processed", 0)), skipped=int(d.get("skipped", 0)),
                failed=int(d.get("failed", 0)), dropped=int(d.get("dropped", 0)), odometry_messages=len(odom),
                mean_stop_layer=_weighted(diags, "stop_layer_mean"), mean_inliers=_weighted(diags, "inliers_mean"),
                mean_total_ms=_weighted(diags, "total_ms"), mean_matches=float(np.mean(counts)) if counts else 0.0,
                device=d.get("device", ""))
    s.skipped_reasons = {k.split(".", 1)[1]: int(v) for k, v in d.items() if k.startswith(("skipped.", "failed."))}
    s.n_layers = int(d.get("layers", 0))
    # Odometry is T_odom_base; back to camera poses in the first camera frame (the node's default extrinsic).
    T_bc = transform_from_xyzq(OPTICAL_TO_BODY_XYZQ)
    inv = np.linalg.inv(T_bc)
    est = {stamp_to_sec(m.header.stamp): inv @ conv.pose_to_matrix(m.pose.pose) @ T_bc for m in odom}
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


def save_match_image(listener: Listener, out: Path) -> bool:
    import cv2

    from lightglue_ros.io.msg_decode import image_to_numpy

    if listener.match_image is None:
        return False
    rgb = image_to_numpy(listener.match_image)
    return bool(cv2.imwrite(str(out / "matches.png"), rgb[..., ::-1]))


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    domain = args.domain_id or 1 + os.getpid() % 230
    env = demo_env(domain)
    os.environ.update({k: env[k] for k in ("FASTDDS_DEFAULT_PROFILES_FILE", "ROS_DOMAIN_ID", "RMW_IMPLEMENTATION")})
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    print(f"demo: {args.frames} synthetic frames {args.width}x{args.height} ({args.motion}, "
          f"{'RGB-D' if args.rgbd else 'monocular'}), ROS_DOMAIN_ID {domain}, DDS shared memory only", flush=True)
    proc = start_matcher(args, env, out / "matcher_node.log")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("lightglue_demo_player", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=lambda: _spin(executor), daemon=True)
    spinner.start()
    code = 1
    try:
        listener = Listener(node)
        sent, seconds, gt = play(args, node, listener, proc)
        summary = summarise(args, listener, sent, seconds, gt, out)
        have_image = save_match_image(listener, out)
        exit_code = stop_matcher(proc)
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
    except RuntimeError as exc:
        print(f"demo failed: {exc}\n--- matcher_node.log (tail) ---\n{_tail(out / 'matcher_node.log')}")
    finally:
        stop_matcher(proc)
        executor.shutdown(timeout_sec=1.0)
        spinner.join(timeout=5.0)  # a spin thread still inside rcl at interpreter exit aborts the process
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return code


def _spin(executor) -> None:
    try:
        executor.spin()
    except Exception:  # noqa: BLE001 - the context shut down under it
        pass


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    sys.exit(main())
