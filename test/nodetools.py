"""Shared helpers for tests that run ``matcher_node`` for real: real rclpy, real DDS, the node in its own process.

Building blocks (each usable alone, e.g. by a fault-injection suite):

- `domain_id_for` / `ros_env`: a ROS_DOMAIN_ID per test module and the SHM-only Fast DDS profile (no packet may
  leave this host; default discovery would multicast on the network).
- `start_matcher` -> `NodeProcess`: the node as a subprocess in its own process group, parameters as ``-p``,
  a params file and remaps; ``stop()`` sends SIGINT and returns the exit code, ``kill()`` kills the group.
- `RosSide`: the test's own rclpy context on the node's domain with a background executor; `wait_ready` waits
  for the node's ``odom`` publisher and ``~/reset`` service.
- `Player`: publishes `types.Frame`s (image raw or compressed, CameraInfo, depth, mask) or any raw message.
- `Collector`: records odom, matches, path, diagnostics (and matches/image only when asked to subscribe).
- `play`: lock-step publishing (next frame once the node has an outcome for the previous one).
- `Stepper`: finer lock-step for fault cases: publish anything, wait until /diagnostics counts its outcomes, read
  the state after that frame.
- `nonfinite`: every non-finite float the node published (odom, path, matches, diagnostics).
- `synthetic_frames`, `ate_sim3`, `poses_from_odom`: data and accuracy helpers.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHM_PROFILE = REPO / "config" / "fastdds_shm_only.xml"
NODE_NAME = "lightglue_matcher"

# Before anything imports rclpy in this process (conftest does the same; the demo or a script may not use it).
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(SHM_PROFILE))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry, Path as PathMsg  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from lightglue_ros.io.msg_decode import stamp_to_sec  # noqa: E402
from lightglue_ros.ros import msgs as conv  # noqa: E402
from lightglue_ros.tools.demo import demo_env as ros_env, matcher_command  # noqa: E402,F401 - one definition
from lightglue_ros.tools.demo import wait_until as wait_for  # noqa: E402
from lightglue_ros.core.types import Frame  # noqa: E402

#: Images start at this stamp (s): stamp 0 means "latest" to TF and looks like an unset header.
STAMP0 = 1000.0


# ------------------------------------------------------------------------------------------------ environment
def domain_id_for(name: str) -> int:
    """A ROS_DOMAIN_ID for one test module: stable per (name, pid), so concurrent runs rarely share one.

    Fast DDS accepts 0..232; 0 (the default) and the conftest fallback are avoided.
    """
    digest = hashlib.sha1(f"{name}:{os.getpid()}".encode()).digest()
    did = 1 + int.from_bytes(digest[:4], "little") % 230
    return did if did != 73 else 74


def ros_value(value) -> str:
    """A Python value as a ``-p name:=value`` literal (YAML); floats keep their decimal point."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(ros_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value else "''"
    return str(value)


# ------------------------------------------------------------------------------------------------ the node process
@dataclass
class NodeProcess:
    proc: subprocess.Popen
    log_path: Path
    domain_id: int
    argv: List[str] = field(default_factory=list)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait; returns the exit code (kills the group if it does not exit in time)."""
        if self.alive():
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.wait()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def start_matcher(domain_id: int, params: Optional[Dict[str, object]] = None, params_file: Optional[Path] = None,
                  remaps: Optional[Dict[str, str]] = None, log_dir: Optional[Path] = None,
                  extra_args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
                  command: Optional[List[str]] = None) -> NodeProcess:
    """Start the node in its own process group with the SHM profile on ``domain_id``."""
    args = list(command or matcher_command()) + ["--ros-args"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for name, value in (params or {}).items():
        args += ["-p", f"{name}:={ros_value(value)}"]
    for src, dst in (remaps or {}).items():
        args += ["-r", f"{src}:={dst}"]
    args += list(extra_args)
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="matcher_node_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"matcher_node_{int(time.time() * 1000)}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=ros_env(domain_id, env),
                                cwd=str(REPO), start_new_session=True)
    return NodeProcess(proc, log_path, domain_id, args)


# ------------------------------------------------------------------------------------------------ the test's ROS side
class RosSide:
    """The test process's own rclpy context, node and executor thread, on ``domain_id``."""

    def __init__(self, domain_id: int, name: str = "nodetools_harness"):
        self.domain_id = domain_id
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - the context shut down under it
            pass

    def wait_ready(self, process: NodeProcess, timeout: float = 60.0, node_name: str = NODE_NAME,
                   namespace: str = "") -> None:
        """Until the node's odom publisher and ~/reset service are visible; raises with the node's log."""
        odom = f"{namespace}/odom"
        service = f"{namespace}/{node_name}/reset"

        def ready() -> bool:
            if not process.alive():
                raise RuntimeError(f"matcher_node exited with {process.proc.returncode}:\n{process.output()}")
            services = {n for n, _ in self.node.get_service_names_and_types()}
            return self.node.count_publishers(odom) > 0 and service in services

        if not wait_for(ready, timeout):
            raise TimeoutError(f"matcher_node not ready after {timeout:.0f} s:\n{process.output()}")

    def call_reset(self, node_name: str = NODE_NAME, namespace: str = "", timeout: float = 10.0) -> Trigger.Response:
        return self.call(Trigger, f"{namespace}/{node_name}/reset", Trigger.Request(), timeout)

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        """Call a service and return its response (TimeoutError when it is absent or silent)."""
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} not available")
            future = client.call_async(request)
            if not wait_for(future.done, timeout):
                raise TimeoutError(f"service {name} did not answer")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def parameters(self, node_name: str = NODE_NAME, namespace: str = "") -> Dict[str, object]:
        """Every parameter of a running node with its current value (through its parameter services)."""
        from rcl_interfaces.srv import GetParameters, ListParameters
        from rclpy.parameter import parameter_value_to_python

        base = f"{namespace}/{node_name}"
        names = list(self.call(ListParameters, f"{base}/list_parameters", ListParameters.Request()).result.names)
        values = self.call(GetParameters, f"{base}/get_parameters", GetParameters.Request(names=names)).values
        return {n: parameter_value_to_python(v) for n, v in zip(names, values)}

    def set_parameters(self, values: Dict[str, object], node_name: str = NODE_NAME, namespace: str = "") -> List[bool]:
        """Set parameters of a running node (e.g. use_sim_time); returns each result's ``successful``."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        params = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        res = self.call(SetParameters, f"{namespace}/{node_name}/set_parameters", SetParameters.Request(parameters=params))
        return [r.successful for r in res.results]

    def describe(self, names: Sequence[str], node_name: str = NODE_NAME, namespace: str = "") -> Dict[str, object]:
        """ParameterDescriptors of a running node, by name."""
        from rcl_interfaces.srv import DescribeParameters

        req = DescribeParameters.Request(names=list(names))
        res = self.call(DescribeParameters, f"{namespace}/{node_name}/describe_parameters", req)
        return dict(zip(names, res.descriptors))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self._thread.join(timeout=5.0)  # a spin thread still inside rcl at interpreter exit aborts the process
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


# ------------------------------------------------------------------------------------------------ player
class Player:
    """Publishes frames like a camera driver (reliable by default: a best-effort subscriber still hears it)."""

    def __init__(self, ros: RosSide, namespace: str = "", compressed: bool = False, reliable: bool = True,
                 frame_id: str = "camera_optical_frame"):
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        n = ros.node
        self.frame_id = frame_id
        self.compressed = compressed
        self.image_pub = (n.create_publisher(CompressedImage, f"{namespace}/image/compressed", qos) if compressed
                          else n.create_publisher(Image, f"{namespace}/image", qos))
        self.info_pub = n.create_publisher(CameraInfo, f"{namespace}/camera_info", qos)
        self.depth_pub = n.create_publisher(Image, f"{namespace}/depth", qos)
        self.mask_pub = n.create_publisher(Image, f"{namespace}/mask", qos)

    def header(self, stamp: float) -> Header:
        return Header(stamp=conv.sec_to_stamp(stamp), frame_id=self.frame_id)

    def wait_subscribed(self, timeout: float = 30.0, depth: bool = False) -> bool:
        pubs = [self.image_pub, self.info_pub] + ([self.depth_pub] if depth else [])
        return wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs), timeout)

    def publish(self, frame: Frame, encoding: str = "rgb8", with_depth: bool = False,
                depth_encoding: str = "32FC1", stamp: Optional[float] = None) -> float:
        """CameraInfo, (depth), then the image, all with one stamp (``STAMP0 + frame.stamp`` unless given)."""
        t = STAMP0 + frame.stamp if stamp is None else stamp
        header = self.header(t)
        self.info_pub.publish(conv.camera_info_msg(frame.camera, header))
        if with_depth and frame.depth is not None:
            depth = frame.depth if depth_encoding == "32FC1" else np.round(
                np.nan_to_num(frame.depth) * 1000.0).astype(np.uint16)
            self.depth_pub.publish(conv.numpy_to_image(depth, depth_encoding, header))
        image = frame.image
        if encoding == "mono8" and image.ndim == 3:
            import cv2

            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self.compressed:
            self.image_pub.publish(conv.numpy_to_compressed(image, "png", header))
        else:
            self.image_pub.publish(conv.numpy_to_image(image, encoding, header))
        return t

    def publish_raw(self, msg) -> None:
        """Any message on the image topic as is (malformed ones included)."""
        self.image_pub.publish(msg)

    def publish_info(self, msg: CameraInfo) -> None:
        self.info_pub.publish(msg)

    def publish_depth(self, msg: Image) -> None:
        self.depth_pub.publish(msg)


# ------------------------------------------------------------------------------------------------ collector
class Collector:
    """Records what the node publishes. ``matches/image`` is subscribed only by `subscribe_match_image`."""

    def __init__(self, ros: RosSide, namespace: str = ""):
        self.ros, self.namespace = ros, namespace
        self.lock = threading.Lock()
        self.odom: List[Odometry] = []
        self.matches: List[PointCloud2] = []
        self.paths: List[PathMsg] = []
        self.diagnostics: List[DiagnosticArray] = []
        self.match_images: List[Image] = []
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        n = ros.node
        n.create_subscription(Odometry, f"{namespace}/odom", self._keep(self.odom), qos)
        n.create_subscription(PointCloud2, f"{namespace}/matches", self._keep(self.matches), qos)
        n.create_subscription(PathMsg, f"{namespace}/path", self._keep(self.paths), qos)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._keep(self.diagnostics), qos)
        self._image_sub = None

    def _keep(self, store: list):
        def callback(msg):
            with self.lock:
                store.append(msg)
        return callback

    def subscribe_match_image(self) -> None:
        if self._image_sub is None:
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            self._image_sub = self.ros.node.create_subscription(
                Image, f"{self.namespace}/matches/image", self._keep(self.match_images), qos)

    def unsubscribe_match_image(self) -> None:
        if self._image_sub is not None:
            self.ros.node.destroy_subscription(self._image_sub)
            self._image_sub = None

    def clear(self) -> None:
        with self.lock:
            for store in (self.odom, self.matches, self.paths, self.diagnostics, self.match_images):
                store.clear()

    def odom_stamps(self) -> List[float]:
        with self.lock:
            return [stamp_to_sec(m.header.stamp) for m in self.odom]

    def diagnostics_values(self) -> Dict[str, object]:
        """Key/values of the newest matcher diagnostics status ({} before any), numbers parsed."""
        with self.lock:
            arrays = list(self.diagnostics)
        for array in reversed(arrays):
            for status in array.status:
                if status.name.startswith(NODE_NAME):
                    return {kv.key: _number(kv.value) for kv in status.values} | {
                        "_level": status.level, "_message": status.message}
        return {}

    def outcomes(self) -> int:
        """Frames the node has finished (processed + skipped + failed), per its newest diagnostics."""
        d = self.diagnostics_values()
        return int(d.get("processed", 0)) + int(d.get("skipped", 0)) + int(d.get("failed", 0))


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# ------------------------------------------------------------------------------------------------ playing
def play(player: Player, collector: Collector, frames: Iterable[Frame], frame_timeout: float = 20.0,
         resend_after: float = 2.0, on_frame: Optional[Callable[[int, float], None]] = None,
         **publish_kwargs) -> List[float]:
    """Publish frames one at a time; the next goes out once the node has an outcome for this one.

    An outcome shows as an odom with this stamp or as the diagnostics count reaching it (set a short
    ``diagnostics_period`` on the node so skipped frames do not wait a second). A frame the node has not received
    after ``resend_after`` s is sent again: right after discovery a best-effort reader may not have matched the
    writer yet and drops its first samples. Returns the stamps sent.
    """
    sent: List[float] = []
    start = collector.diagnostics_values()
    done_before, received_before = collector.outcomes(), int(start.get("received", 0))
    for i, frame in enumerate(frames):
        t = player.publish(frame, **publish_kwargs)
        sent.append(t)

        def finished() -> bool:
            return t in collector.odom_stamps() or collector.outcomes() >= done_before + i + 1

        deadline = time.monotonic() + frame_timeout
        while not wait_for(finished, min(resend_after, max(0.0, deadline - time.monotonic())), poll=0.005):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no outcome for frame {i} (stamp {t}) after {frame_timeout} s; "
                                   f"diagnostics {collector.diagnostics_values()}")
            if int(collector.diagnostics_values().get("received", 0)) < received_before + i + 1:
                player.publish(frame, **publish_kwargs)  # lost before the node heard it: same stamp again
        if on_frame is not None:
            on_frame(i, t)
    return sent


class Stepper:
    """Lock-step for fault cases: ``step(publish, outcomes)`` runs ``publish()`` and waits until the node's
    /diagnostics count ``outcomes`` more finished frames; it returns those diagnostics (the node's state after them).

    Needs a short ``diagnostics_period`` on the node (0.05 s). A publish the node did not receive within
    ``resend_after`` (a reader that matched late) is repeated; ``outcomes=0`` for a frame whose outcome comes later
    (an image waiting for its depth).
    """

    def __init__(self, collector: Collector, timeout: float = 30.0, resend_after: float = 3.0):
        self.collector, self.timeout, self.resend_after = collector, timeout, resend_after
        if not wait_for(lambda: bool(collector.diagnostics_values()), timeout):
            raise TimeoutError("no /diagnostics from the node")
        d = collector.diagnostics_values()
        self.expected = collector.outcomes()
        self.received = int(d.get("received", 0))

    def step(self, publish: Callable[[], None], outcomes: int = 1, images: int = 1) -> Dict[str, object]:
        publish()
        self.expected += outcomes
        self.received += images
        deadline = time.monotonic() + self.timeout
        while not wait_for(lambda: self.collector.outcomes() >= self.expected,
                           min(self.resend_after, max(0.0, deadline - time.monotonic())), poll=0.005):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no outcome after {self.timeout} s; diagnostics {self.collector.diagnostics_values()}")
            if int(self.collector.diagnostics_values().get("received", 0)) < self.received:
                publish()  # lost before the node heard it: the same messages again
        d = self.collector.diagnostics_values()
        self.expected = max(self.expected, self.collector.outcomes())
        self.received = max(self.received, int(d.get("received", 0)))
        return d


def nonfinite(collector: Collector) -> List[str]:
    """Every non-finite float the node published: odom, path, matches (x y z may be NaN by design: no depth
    there), diagnostics values."""
    bad: List[str] = []
    with collector.lock:
        odom, paths, clouds, diags = (list(collector.odom), list(collector.paths), list(collector.matches),
                                      list(collector.diagnostics))
    for m in odom:
        p, q, t = m.pose.pose.position, m.pose.pose.orientation, m.twist.twist
        values = [p.x, p.y, p.z, q.x, q.y, q.z, q.w, t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y,
                  t.angular.z, *m.pose.covariance, *m.twist.covariance]
        if not np.all(np.isfinite(values)):
            bad.append(f"odom at {stamp_to_sec(m.header.stamp)}")
    for path in paths[-1:]:  # each path message repeats the earlier poses
        for ps in path.poses:
            p, q = ps.pose.position, ps.pose.orientation
            if not np.all(np.isfinite([p.x, p.y, p.z, q.x, q.y, q.z, q.w])):
                bad.append(f"path pose at {stamp_to_sec(ps.header.stamp)}")
    for msg in clouds:
        pts = conv.cloud_to_numpy(msg)
        for name in pts.dtype.names:
            if name not in ("x", "y", "z") and pts.dtype[name].kind == "f" and not np.all(np.isfinite(pts[name])):
                bad.append(f"matches.{name} at {stamp_to_sec(msg.header.stamp)}")
    for array in diags:
        for status in array.status:
            for kv in status.values:
                value = _number(kv.value)
                if isinstance(value, float) and not np.isfinite(value):
                    bad.append(f"diagnostics {kv.key}={kv.value}")
    return bad


# ------------------------------------------------------------------------------------------------ data + accuracy
def synthetic_frames(frames: int = 40, width: int = 320, height: int = 240, depth: bool = False,
                     motion: str = "orbit", step: float = 0.05, seed: int = 0) -> List[Frame]:
    from lightglue_ros.io.datasets import synthetic_sequence
    from lightglue_ros.io.synthetic import SyntheticConfig

    cfg = SyntheticConfig(seed=seed, frames=frames, width=width, height=height, depth=depth, motion=motion, step=step)
    return list(synthetic_sequence(cfg))


def poses_from_odom(msgs: Sequence[Odometry], T_base_cam: np.ndarray) -> Dict[float, np.ndarray]:
    """Odometry (T_odom_base) -> camera poses in the first camera frame, by stamp (inverse of the node's map)."""
    inv = np.linalg.inv(T_base_cam)
    return {stamp_to_sec(m.header.stamp): inv @ conv.pose_to_matrix(m.pose.pose) @ T_base_cam for m in msgs}


def ate_sim3(est_xyz: np.ndarray, gt_xyz: np.ndarray, with_scale: bool = True):
    """(RMSE of positions after Umeyama Sim(3)/SE(3) alignment, scale) (Umeyama 1991)."""
    x, y = np.asarray(est_xyz, np.float64).T, np.asarray(gt_xyz, np.float64).T
    mx, my = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    xc, yc = x - mx, y - my
    U, d, Vt = np.linalg.svd(yc @ xc.T / x.shape[1])
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    scale = float(np.trace(np.diag(d) @ S) / (xc ** 2).sum(0).mean()) if with_scale else 1.0
    aligned = scale * R @ x + (my - scale * R @ mx)
    return float(np.sqrt(((aligned - y) ** 2).sum(0).mean())), scale


def path_length(xyz: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(np.asarray(xyz), axis=0), axis=1).sum())
