"""The one player / launcher of ``matcher_node``, for the demo, the long-run benchmark and the node tests.

The node runs in its own process, as on a robot; this process is the camera and the listener:

- `ros_env` / `matcher_command` / `start_matcher` -> `NodeProcess`: the node as a subprocess in its own process
  group, on a domain of its own, with DDS confined to shared memory (`shm_profile`; default discovery would
  multicast on the network), parameters as ``-p``, a params file, remaps; ``stop()`` sends SIGINT.
- `RosSide`: this process's own rclpy context, node and executor thread on the node's domain; it waits for the
  node (`wait_ready`) and calls its services and parameters.
- `Player`: publishes `types.Frame`s like a camera driver (CameraInfo, depth, then the image, one stamp).
- `Collector`: records what the node publishes (odom with arrival times, matches, path, diagnostics, and
  matches/image only while asked) and parses the node's /diagnostics.
- `play`: lock-step publishing, the next frame once the node has an outcome for the previous one.
- `wait_until`, `domain_id_for`, `poses_from_odom`: small helpers all three share.

Importing this module sets the SHM-only Fast DDS profile as the default of this process (before rclpy loads):
everything that uses the harness keeps DDS on this host unless the environment already says otherwise.
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
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

PACKAGE = "lightglue_ros"
NODE_NAME = "lightglue_matcher"
#: Images start at this stamp (s): stamp 0 means "latest" to TF and looks like an unset header.
STAMP0 = 1000.0


# ------------------------------------------------------------------------------------------------ environment
def shm_profile() -> Optional[Path]:
    """Find the SHM-only Fast DDS profile.

    The source tree's, else the installed share copy; None when neither exists.
    """
    candidates = [Path(__file__).resolve().parents[2] / "config" / "fastdds_shm_only.xml",
                  Path(sys.prefix) / "share" / PACKAGE / "config" / "fastdds_shm_only.xml"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "config" / "fastdds_shm_only.xml")
    except Exception:  # noqa: BLE001 - not in an ament index: the other candidates remain
        pass
    return next((path for path in candidates if path.is_file()), None)


def _profile_or_raise() -> Path:
    path = shm_profile()
    if path is None:
        raise FileNotFoundError("fastdds_shm_only.xml not found (neither in the source tree nor installed)")
    return path


_PROFILE = shm_profile()
if _PROFILE is not None:  # before anything imports rclpy in this process
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(_PROFILE))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry, Path as PathMsg  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from lightglue_ros.core.types import Frame  # noqa: E402
from lightglue_ros.io.msg_decode import stamp_to_sec  # noqa: E402
from lightglue_ros.ros.msgs import (camera_info_msg, numpy_to_compressed, numpy_to_image, pose_to_matrix,  # noqa: E402
                                    sec_to_stamp)


def ros_env(domain_id: int, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Return the environment of a node process: DDS on shared memory only, on ``domain_id``."""
    env = dict(os.environ if base is None else base)
    env.update(FASTDDS_DEFAULT_PROFILES_FILE=str(_profile_or_raise()), ROS_DOMAIN_ID=str(domain_id),
               RMW_IMPLEMENTATION=env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"), PYTHONUNBUFFERED="1")
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; the profile already keeps DDS on this host
    return env


def domain_id_for(name: str) -> int:
    """Pick a ROS_DOMAIN_ID for one user (a test module, a tool run), stable per (name, pid).

    Concurrent runs rarely share one. Fast DDS accepts 0..232; 0 (the default) and the tests' conftest fallback
    (73) are avoided.
    """
    digest = hashlib.sha1(f"{name}:{os.getpid()}".encode()).digest()
    did = 1 + int.from_bytes(digest[:4], "little") % 230
    return did if did != 73 else 74


def matcher_command() -> List[str]:
    """Return the command of this interpreter's ``matcher_node`` console script.

    ``LIGHTGLUE_ROS_NODE_CMD`` (shell words) overrides it.
    """
    override = os.environ.get("LIGHTGLUE_ROS_NODE_CMD")
    if override:
        return override.split()
    script = Path(sys.executable).parent / "matcher_node"
    return [str(script)] if script.exists() else [sys.executable, "-m", f"{PACKAGE}.ros.node"]


def ros_value(value) -> str:
    """Write a Python value as a ``-p name:=value`` literal (YAML); floats keep their decimal point."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(ros_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value else "''"
    return str(value)


def wait_until(predicate: Callable[[], Any], timeout: float, poll: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` s pass; its last value, as a bool."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


# ------------------------------------------------------------------------------------------------ the node process
@dataclass
class NodeProcess:
    """``matcher_node`` running in its own process group, its output in ``log_path``."""

    proc: subprocess.Popen
    log_path: Path
    domain_id: int
    argv: List[str] = field(default_factory=list)

    def output(self) -> str:
        """Everything the node printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        """Tell whether the process is still running (has not exited)."""
        return self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        """``sig`` to the whole process group."""
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
        """SIGKILL the process group and reap it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def start_matcher(domain_id: int, params: Optional[Dict[str, object]] = None, params_file: Optional[Path] = None,
                  remaps: Optional[Dict[str, str]] = None, log_dir: Optional[Path] = None,
                  extra_args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
                  command: Optional[List[str]] = None, log_path: Optional[Path] = None,
                  cwd: Optional[Path] = None) -> NodeProcess:
    """Start the node in its own process group with the SHM profile on ``domain_id``.

    Its output goes to ``log_path``, else to a new file in ``log_dir`` (else in a temporary folder); ``env`` is
    the base environment (default: this process's).
    """
    args = list(command or matcher_command()) + ["--ros-args"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for name, value in (params or {}).items():
        args += ["-p", f"{name}:={ros_value(value)}"]
    for src, dst in (remaps or {}).items():
        args += ["-r", f"{src}:={dst}"]
    args += list(extra_args)
    if log_path is None:
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix="matcher_node_"))
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"matcher_node_{int(time.time() * 1000)}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=ros_env(domain_id, env),
                                cwd=None if cwd is None else str(cwd), start_new_session=True)
    return NodeProcess(proc, Path(log_path), domain_id, args)


# ------------------------------------------------------------------------------------------------ our ROS side
class RosSide:
    """This process's own rclpy context, node and executor thread, on ``domain_id``."""

    def __init__(self, domain_id: int, name: str = "lightglue_harness"):
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

        if not wait_until(ready, timeout):
            raise TimeoutError(f"matcher_node not ready after {timeout:.0f} s:\n{process.output()}")

    def call_reset(self, node_name: str = NODE_NAME, namespace: str = "", timeout: float = 10.0) -> Trigger.Response:
        """Call the node's ``~/reset`` service."""
        return self.call(Trigger, f"{namespace}/{node_name}/reset", Trigger.Request(), timeout)

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        """Call a service and return its response (TimeoutError when it is absent or silent)."""
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} not available")
            future = client.call_async(request)
            if not wait_until(future.done, timeout):
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
        request = SetParameters.Request(parameters=params)
        res = self.call(SetParameters, f"{namespace}/{node_name}/set_parameters", request)
        return [r.successful for r in res.results]

    def describe(self, names: Sequence[str], node_name: str = NODE_NAME, namespace: str = "") -> Dict[str, object]:
        """Fetch the ParameterDescriptors of a running node, by name."""
        from rcl_interfaces.srv import DescribeParameters

        req = DescribeParameters.Request(names=list(names))
        res = self.call(DescribeParameters, f"{namespace}/{node_name}/describe_parameters", req)
        return dict(zip(names, res.descriptors))

    def close(self) -> None:
        """Stop the executor thread and shut the context down."""
        self.executor.shutdown(timeout_sec=1.0)
        self._thread.join(timeout=5.0)  # a spin thread still inside rcl at interpreter exit aborts the process
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


# ------------------------------------------------------------------------------------------------ player
@dataclass
class FrameMessages:
    """One frame as a camera driver sends it: CameraInfo, optional depth and the image, all with ``stamp``."""

    info: CameraInfo
    image: Any  # Image or CompressedImage
    depth: Optional[Image]
    stamp: float


class Player:
    """Publishes frames like a camera driver (reliable by default: a best-effort subscriber still hears it)."""

    def __init__(self, ros: RosSide, namespace: str = "", compressed: bool = False, reliable: bool = True,
                 frame_id: str = "camera_optical_frame"):
        qos = QoSProfile(depth=10,
                         reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        n = ros.node
        self.frame_id = frame_id
        self.compressed = compressed
        self.image_pub = (n.create_publisher(CompressedImage, f"{namespace}/image/compressed", qos) if compressed
                          else n.create_publisher(Image, f"{namespace}/image", qos))
        self.info_pub = n.create_publisher(CameraInfo, f"{namespace}/camera_info", qos)
        self.depth_pub = n.create_publisher(Image, f"{namespace}/depth", qos)
        self.mask_pub = n.create_publisher(Image, f"{namespace}/mask", qos)

    def header(self, stamp: float) -> Header:
        """Make a header of this camera at ``stamp`` seconds."""
        return Header(stamp=sec_to_stamp(stamp), frame_id=self.frame_id)

    def subscribed(self, depth: bool = False) -> bool:
        """Tell whether the node subscribes to the image and camera_info (and depth) topics."""
        pubs = [self.image_pub, self.info_pub] + ([self.depth_pub] if depth else [])
        return all(p.get_subscription_count() > 0 for p in pubs)

    def wait_subscribed(self, timeout: float = 30.0, depth: bool = False,
                        process: Optional[NodeProcess] = None) -> bool:
        """Until the node subscribed (False after ``timeout``, or once ``process`` exited)."""
        return wait_until(lambda: self.subscribed(depth) or (process is not None and not process.alive()),
                          timeout, poll=0.005) and (process is None or process.alive())

    def messages(self, frame: Frame, encoding: str = "rgb8", with_depth: bool = False,
                 depth_encoding: str = "32FC1", stamp: Optional[float] = None) -> FrameMessages:
        """Build the messages of one frame, stamped ``STAMP0 + frame.stamp`` unless ``stamp`` is given."""
        t = STAMP0 + frame.stamp if stamp is None else stamp
        header = self.header(t)
        depth = None
        if with_depth and frame.depth is not None:
            pixels = frame.depth if depth_encoding == "32FC1" else np.round(
                np.nan_to_num(frame.depth) * 1000.0).astype(np.uint16)
            depth = numpy_to_image(pixels, depth_encoding, header)
        image = frame.image
        if encoding == "mono8" and image.ndim == 3:
            import cv2

            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        image_msg = (numpy_to_compressed(image, "png", header) if self.compressed
                     else numpy_to_image(image, encoding, header))
        return FrameMessages(camera_info_msg(frame.camera, header), image_msg, depth, t)

    def send(self, msgs: FrameMessages) -> float:
        """Publish CameraInfo, depth, then the image; returns the monotonic time the image went out."""
        self.info_pub.publish(msgs.info)
        if msgs.depth is not None:
            self.depth_pub.publish(msgs.depth)
        sent = time.monotonic()
        self.image_pub.publish(msgs.image)
        return sent

    def publish(self, frame: Frame, encoding: str = "rgb8", with_depth: bool = False,
                depth_encoding: str = "32FC1", stamp: Optional[float] = None) -> float:
        """CameraInfo, (depth), then the image, all with one stamp (``STAMP0 + frame.stamp`` unless given)."""
        msgs = self.messages(frame, encoding, with_depth, depth_encoding, stamp)
        self.send(msgs)
        return msgs.stamp

    def publish_raw(self, msg) -> None:
        """Any message on the image topic as is (malformed ones included)."""
        self.image_pub.publish(msg)

    def publish_info(self, msg: CameraInfo) -> None:
        """Any CameraInfo on the camera_info topic."""
        self.info_pub.publish(msg)

    def publish_depth(self, msg: Image) -> None:
        """Any Image on the depth topic."""
        self.depth_pub.publish(msg)


# ------------------------------------------------------------------------------------------------ collector
#: What a `Collector` can record (``matches/image`` only after `Collector.subscribe_match_image`).
TOPICS = ("odom", "matches", "path", "diagnostics")


class Collector:
    """Records what the node publishes, and when it arrived.

    ``topics`` picks what to subscribe to (subscribing to ``path`` makes the node build it); ``keep`` bounds what
    each list holds (None: everything, for tests that look back; a number for hours-long runs). ``cond`` is
    notified on every message, for waiting without polling.
    """

    def __init__(self, ros: RosSide, namespace: str = "", topics: Sequence[str] = TOPICS,
                 keep: Optional[int] = None):
        self.ros, self.namespace, self.keep = ros, namespace, keep
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.odom: List[Odometry] = []
        self.matches: List[PointCloud2] = []
        self.paths: List[PathMsg] = []
        self.diagnostics: List[DiagnosticArray] = []
        self.match_images: List[Image] = []
        self.odom_arrivals: Dict[Tuple[int, int], float] = {}  # (sec, nanosec) -> monotonic arrival time
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        n = ros.node
        kinds = {"odom": (Odometry, f"{namespace}/odom", self._on_odom),
                 "matches": (PointCloud2, f"{namespace}/matches", self._keep(self.matches)),
                 "path": (PathMsg, f"{namespace}/path", self._keep(self.paths)),
                 "diagnostics": (DiagnosticArray, "/diagnostics", self._keep(self.diagnostics))}
        for topic in topics:
            msg_type, name, callback = kinds[topic]
            n.create_subscription(msg_type, name, callback, qos)
        self._image_sub = None

    def _store(self, store: list, msg) -> None:
        with self.cond:
            store.append(msg)
            if self.keep is not None and len(store) > 2 * self.keep:
                del store[: len(store) - self.keep]
            self.cond.notify_all()

    def _keep(self, store: list):
        return lambda msg: self._store(store, msg)

    def _on_odom(self, msg: Odometry) -> None:
        arrival = time.monotonic()
        with self.cond:
            self.odom_arrivals[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = arrival
            self._store(self.odom, msg)

    def subscribe_match_image(self) -> None:
        """Start recording ``matches/image`` (the node draws it only while someone listens)."""
        if self._image_sub is None:
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            self._image_sub = self.ros.node.create_subscription(
                Image, f"{self.namespace}/matches/image", self._keep(self.match_images), qos)

    def unsubscribe_match_image(self) -> None:
        """Stop recording ``matches/image``."""
        if self._image_sub is not None:
            self.ros.node.destroy_subscription(self._image_sub)
            self._image_sub = None

    def clear(self) -> None:
        """Forget everything recorded."""
        with self.lock:
            for store in (self.odom, self.matches, self.paths, self.diagnostics, self.match_images):
                store.clear()
            self.odom_arrivals.clear()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Until ``predicate`` holds, re-checked on every message; False after ``timeout`` s."""
        with self.cond:
            return bool(self.cond.wait_for(predicate, timeout))

    def odom_stamps(self) -> List[float]:
        """Stamps (s) of the odometry messages received."""
        with self.lock:
            return [stamp_to_sec(m.header.stamp) for m in self.odom]

    def odom_arrival(self, stamp: float) -> Optional[float]:
        """Monotonic arrival time of the odometry with exactly this stamp, or None."""
        t = sec_to_stamp(stamp)
        with self.lock:
            return self.odom_arrivals.get((t.sec, t.nanosec))

    def has_odom(self, stamp: float) -> bool:
        """Tell whether an odometry message with exactly this stamp arrived."""
        return self.odom_arrival(stamp) is not None

    def diagnostics_history(self) -> List[Dict[str, object]]:
        """Key/values of every matcher diagnostics status received (numbers parsed), oldest first."""
        with self.lock:
            arrays = list(self.diagnostics)
        return [_status_values(status) for array in arrays for status in array.status
                if status.name.startswith(NODE_NAME)]

    def diagnostics_values(self) -> Dict[str, object]:
        """Key/values of the newest matcher diagnostics status ({} before any), numbers parsed."""
        with self.lock:
            arrays = list(self.diagnostics)
        for array in reversed(arrays):
            for status in array.status:
                if status.name.startswith(NODE_NAME):
                    return _status_values(status)
        return {}

    def outcomes(self) -> int:
        """Frames the node has finished (processed + skipped + failed), per its newest diagnostics."""
        d = self.diagnostics_values()
        return int(d.get("processed", 0)) + int(d.get("skipped", 0)) + int(d.get("failed", 0))


def _status_values(status) -> Dict[str, object]:
    return {kv.key: number(kv.value) for kv in status.values} | {"_level": status.level, "_message": status.message}


def number(text: str):
    """Parse a diagnostics value: int, else float, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# ------------------------------------------------------------------------------------------------ playing
def play(player: Player, collector: Collector, frames: Iterable[Frame], frame_timeout: float = 20.0,
         resend_after: float = 2.0, on_frame: Optional[Callable[[int, float], None]] = None,
         process: Optional[NodeProcess] = None, **publish_kwargs) -> List[float]:
    """Publish frames one at a time; the next goes out once the node has an outcome for this one.

    An outcome shows as an odom with this stamp or as the diagnostics count reaching it (set a short
    ``diagnostics_period`` on the node so skipped frames do not wait a second). A frame the node has not received
    after ``resend_after`` s is sent again: right after discovery a best-effort reader may not have matched the
    writer yet and drops its first samples. ``on_frame(i, stamp)`` runs after each outcome. Raises TimeoutError
    after ``frame_timeout`` s without an outcome, RuntimeError once ``process`` exited. Returns the stamps sent.
    """
    sent: List[float] = []
    start = collector.diagnostics_values()
    done_before, received_before = collector.outcomes(), int(start.get("received", 0))
    for i, frame in enumerate(frames):
        t = player.publish(frame, **publish_kwargs)
        sent.append(t)

        def finished() -> bool:
            exited = process is not None and not process.alive()
            return exited or collector.has_odom(t) or collector.outcomes() >= done_before + i + 1

        deadline = time.monotonic() + frame_timeout
        while not wait_until(finished, min(resend_after, max(0.0, deadline - time.monotonic())), poll=0.005):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no outcome for frame {i} (stamp {t}) after {frame_timeout} s; "
                                   f"diagnostics {collector.diagnostics_values()}")
            if int(collector.diagnostics_values().get("received", 0)) < received_before + i + 1:
                player.publish(frame, **publish_kwargs)  # lost before the node heard it: same stamp again
        if process is not None and not process.alive():
            raise RuntimeError(f"matcher_node exited with {process.proc.returncode} at frame {i}")
        if on_frame is not None:
            on_frame(i, t)
    return sent


def poses_from_odom(msgs: Sequence[Odometry], T_base_cam: np.ndarray) -> Dict[float, np.ndarray]:
    """Odometry (T_odom_base) -> camera poses in the first camera frame, by stamp (inverse of the node's map)."""
    inv = np.linalg.inv(T_base_cam)
    return {stamp_to_sec(m.header.stamp): inv @ pose_to_matrix(m.pose.pose) @ T_base_cam for m in msgs}
