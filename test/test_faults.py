"""Fault injection: matcher_node in its own process (real rclpy, SHM-only DDS), fed every kind of bad input.

Three node processes, each shared by many cases (a start costs the torch import and the weights):

- ``mono``: orb, raw images, ``max_image_size`` 320 - malformed images, calibration, time;
- ``learned``: the default lightglue backend, 128 keypoints - content (black, white, saturated, noise, a static
  camera for 500 frames, a fast rotation) and images around the network's minimum size;
- ``rgbd``: orb, compressed images + depth, ``publish_when_lost`` false - depth faults, corrupt compressed bytes.

Every case starts from a tracking node, injects its fault, then sends good frames again. Checked each time:
the node is alive; the outcome / reason / event counts of /diagnostics moved by exactly the expected amounts and
every received frame has one outcome; a log line names each cause, throttled; every published float is finite;
the pose never jumps (odometry published while lost holds the pose under the inflated covariance); and tracking
is back within ``lost_after + 5`` good frames.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (make install / a sourced ROS 2)")

import cv2  # noqa: E402
import nodetools as nt  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from lightglue_ros.core import lie  # noqa: E402
from lightglue_ros.geometry import frames  # noqa: E402
from lightglue_ros.geometry import resize  # noqa: E402
from lightglue_ros.io import msg_decode as dec  # noqa: E402
from lightglue_ros.ros import msgs as conv  # noqa: E402
from lightglue_ros.io.synthetic import SHAKE_YAW_DEG, SyntheticConfig, look_at, make_scene, render_frame  # noqa: E402
from lightglue_ros.core.types import Camera, Frame  # noqa: E402
from lightglue_ros.core.types import reason_key  # noqa: E402
from lightglue_ros.odometry.odometry import REASON_SEED_DEPTH  # noqa: E402

W, H = 320, 240  # monocular initialisation needs some parallax in pixels: at 160x120 it takes too many frames
DT = 0.1  # seconds between frames
STEP = 0.1  # metres per frame (1 m/s): a monocular re-initialisation takes 2-5 frames
LOST_AFTER = 3
RECOVER = LOST_AFTER + 5  # good frames within which the node must be tracking again
LOST_COVARIANCE = 1.0e3  # the odometry default, restated: lost odom must carry at least this variance
T_BASE_CAM = lie.transform_from_xyzq(frames.OPTICAL_TO_BODY_XYZQ)
COMMON = {"diagnostics_period": 0.05, "qos": "reliable", "lost_after": LOST_AFTER, "num_threads": 1}
NODES = {
    "mono": dict(COMMON, backend="orb", max_keypoints=256, max_image_size=320),
    "learned": dict(COMMON, max_keypoints=128),
    # The other documented way to be lost: no odometry at all until tracking is back.
    "rgbd": dict(COMMON, backend="orb", max_keypoints=256, use_depth=True, image_transport="compressed",
                 publish_when_lost=False),
}


# ------------------------------------------------------------------------------------------------ the scene
class Scene:
    """The synthetic room seen from a camera sweeping a +-15 deg arc of a 3 m circle around a point ahead, back and
    forth at a constant STEP per frame, with a little bob and roll. Always moving (unlike the synthetic orbit,
    which slows down at its ends), so how fast tracking comes back does not depend on where a case starts."""

    RADIUS, HALF_ANGLE = 3.0, math.radians(15)

    def __init__(self):
        self.config = SyntheticConfig(seed=0, frames=1, width=W, height=H, depth=True)
        self.scene = make_scene(0)

    def pose(self, i: int) -> np.ndarray:
        half = self.HALF_ANGLE * self.RADIUS  # metres from the middle of the arc to an end
        s = (i * STEP) % (4 * half)
        th = (s - half if s < 2 * half else 3 * half - s) / self.RADIUS
        target = np.array([0.0, 0.0, self.RADIUS])
        eye = target + self.RADIUS * np.array([-math.sin(th), 0.0, -math.cos(th)])
        eye[1] = 0.1 * math.sin(0.2 * i)
        return look_at(eye, target, roll=math.radians(2) * math.sin(0.15 * i))

    def frame(self, i: int, size: Tuple[int, int] = (W, H), yaw_deg: float = 0.0) -> Frame:
        pose = self.pose(i)
        if yaw_deg:
            c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
            pose[:3, :3] = pose[:3, :3] @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        cfg = dataclasses.replace(self.config, width=size[0], height=size[1])
        return render_frame(cfg, i, pose, self.scene)


# ------------------------------------------------------------------------------------------------ one node under test
@dataclass
class NodeUnderTest:
    name: str
    proc: nt.NodeProcess
    ros: nt.RosSide
    player: nt.Player
    col: nt.Collector
    scene: Scene
    compressed: bool = False
    depth: bool = False
    stepper: Optional[nt.Stepper] = None
    t: float = nt.STAMP0  # stamp of the next frame
    i: int = 0  # trajectory index of the next good frame
    gt: Dict[float, np.ndarray] = field(default_factory=dict)  # stamp -> T_world_cam of every real frame sent
    last_info: Optional[Tuple] = None

    # ---- sending ---------------------------------------------------------------------------------------------
    def header(self, stamp: float):
        return self.player.header(stamp)

    def image_msg(self, image: np.ndarray, stamp: float):
        if self.compressed:
            return conv.numpy_to_compressed(image, "png", self.header(stamp))
        return conv.numpy_to_image(image, "mono8" if image.ndim == 2 else "rgb8", self.header(stamp))

    def send(self, image=None, camera: Optional[Camera] = None, *, stamp: Optional[float] = None,
             image_msg=None, info: Optional[CameraInfo] = None, depth=None, depth_msg: Optional[Image] = None,
             gt: Optional[np.ndarray] = None, outcomes: int = 1, wait_odom: bool = False) -> Dict[str, object]:
        """One frame: camera_info (unless ``info`` is False-y and no camera), depth, image; waits for its outcome."""
        t = self.t if stamp is None else stamp
        self.t = t + DT
        header = self.header(t)
        if info is None and camera is not None:
            info = conv.camera_info_msg(camera, header)
        if image_msg is None:
            image_msg = self.image_msg(image, t)
        if depth_msg is None and depth is not None:
            depth_msg = conv.numpy_to_image(depth, "32FC1", header)
        if gt is not None:
            self.gt[t] = gt

        def publish() -> None:
            if info is not None:
                key = (info.width, info.height, tuple(info.k), info.distortion_model)
                self.player.publish_info(info)
                if key != self.last_info:  # a changed camera: let it land before its image
                    self.last_info = key
                    time.sleep(0.02)
            if depth_msg is not None:
                self.player.publish_depth(depth_msg)
            self.player.publish_raw(image_msg)

        if wait_odom:
            return self._send_fast(publish, t)
        return self.stepper.step(publish, outcomes=outcomes)

    def _send_fast(self, publish: Callable[[], None], t: float) -> Dict[str, object]:
        """Lock-step on the odom of this stamp (no diagnostics round trip): for long runs of processed frames."""
        stamp = conv.sec_to_stamp(t)
        publish()
        self.stepper.expected += 1
        self.stepper.received += 1

        def done() -> bool:
            with self.col.lock:
                last = self.col.odom[-1].header.stamp if self.col.odom else None
            return (last is not None and (last.sec, last.nanosec) == (stamp.sec, stamp.nanosec)) or \
                self.col.outcomes() >= self.stepper.expected
        assert nt.wait_for(done, 30, poll=0.002), f"no outcome for {t}: {self.col.diagnostics_values()}"
        return {}

    def good(self, n: int = 1, size: Tuple[int, int] = (W, H), **kw) -> List[Dict[str, object]]:
        """The next ``n`` frames of the trajectory, as a camera driver would send them."""
        out = []
        for _ in range(n):
            f = self.scene.frame(self.i, size)
            self.i += 1
            out.append(self.send(f.image, f.camera, depth=f.depth if self.depth else None, gt=f.gt_pose, **kw))
        return out

    def until_tracking(self, limit: int, size: Tuple[int, int] = (W, H)) -> Optional[int]:
        """Good frames until the state after one is 'tracking'; how many it took (None: not within limit)."""
        for k in range(1, limit + 1):
            if self.good(1, size)[0].get("state") == "tracking":
                return k
        return None

    def prepare(self, reset: bool = True) -> None:
        """A known start: (reset and) good frames until the node tracks."""
        if reset:
            assert self.ros.call_reset().success
        assert self.until_tracking(20) is not None, f"{self.name}: not tracking: {self.col.diagnostics_values()}"

    def diag(self) -> Dict[str, object]:
        assert nt.wait_for(lambda: self.col.outcomes() >= self.stepper.expected, 10)
        return self.col.diagnostics_values()


def start_node(name: str, tmp_path_factory, no_info_frames: int = 0) -> NodeUnderTest:
    ros = nt.RosSide(nt.domain_id_for(f"{__name__}:{name}"))
    params = NODES[name]
    proc = nt.start_matcher(ros.domain_id, params=params, log_dir=tmp_path_factory.mktemp(name))
    try:
        ros.wait_ready(proc, timeout=120)
        compressed = params.get("image_transport") == "compressed"
        player = nt.Player(ros, compressed=compressed)
        col = nt.Collector(ros)
        assert player.wait_subscribed(20, depth=params.get("use_depth", False)), proc.output()
        assert nt.wait_for(lambda: ros.node.count_publishers("/diagnostics") > 0 and bool(col.diagnostics), 20)
        time.sleep(0.3)  # the node's readers match our writers a moment after we see them
        node = NodeUnderTest(name, proc, ros, player, col, Scene(), compressed, params.get("use_depth", False))
        node.stepper = nt.Stepper(col)
        return node
    except Exception:
        proc.kill()
        ros.close()
        raise


def stop_node(node: NodeUnderTest) -> None:
    code = node.proc.stop(timeout=20)
    out = node.proc.output()
    node.ros.close()
    assert code == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]


# ------------------------------------------------------------------------------------------------ one case
@dataclass
class CaseResult:
    before: Dict[str, object]
    fault: Dict[str, object]  # diagnostics right after the fault frames
    after: Dict[str, object]  # ... and after the good frames that follow
    recovered_in: Optional[int]
    odom: list
    log: str
    seconds: float

    def delta(self, key: str, end: str = "fault") -> float:
        stop = self.fault if end == "fault" else self.after
        return float(stop.get(key, 0) or 0) - float(self.before.get(key, 0) or 0)

    def changed(self, end: str = "fault") -> Dict[str, float]:
        """Every counted reason / event / reset key that moved (processed.*, skipped.*, failed.*, reset.*, event.*)."""
        stop = self.fault if end == "fault" else self.after
        keys = {k for k in stop if k.split(".")[0] in ("processed", "skipped", "failed", "reset", "event")
                and "." in k}
        return {k: self.delta(k, end) for k in sorted(keys) if self.delta(k, end)}


def run_case(node: NodeUnderTest, fault: Callable[[NodeUnderTest], None], reset: bool = True,
             recover_size: Tuple[int, int] = (W, H)) -> CaseResult:
    node.prepare(reset)
    t0, n_odom, n_log = time.monotonic(), len(node.col.odom), len(node.proc.output())
    before = node.diag()
    fault(node)
    after_fault = node.diag()
    recovered = node.until_tracking(RECOVER, recover_size)
    after = node.diag()
    time.sleep(0.1)  # the last log lines reach the file
    with node.col.lock:
        odom = list(node.col.odom[n_odom:])
    return CaseResult(before, after_fault, after, recovered, odom, node.proc.output()[n_log:],
                      time.monotonic() - t0)


def check_case(node: NodeUnderTest, res: CaseResult, expect: Dict[str, int], logged: Tuple[str, ...] = (),
               exact: bool = True) -> None:
    """The checks every case shares (see the module docstring)."""
    assert node.proc.alive(), node.proc.output()[-3000:]
    changed = res.changed()
    print(f"{node.name}: {changed}; tracking again after {res.recovered_in} good frames")
    for key, n in expect.items():
        assert res.delta(key) == n, (key, n, changed)
    if exact:  # no other failure or skip than the expected ones
        others = {k: v for k, v in changed.items() if k.startswith(("failed.", "skipped.")) and k not in expect}
        assert not others, (others, expect)
    outcomes = sum(res.delta(k, "after") for k in ("processed", "skipped", "failed"))
    assert outcomes == res.delta("received", "after"), ("every received frame has exactly one outcome", res.after)
    for key in tuple(k for k, n in expect.items() if n and not k.startswith("processed.")) + logged:
        # The cause is in the log (maybe from an earlier case: one line per cause per 10 s), never a flood.
        assert f"[{key}]" in node.proc.output(), f"no log line for {key}:\n{res.log[-2000:]}"
        lines = [ln for ln in res.log.splitlines() if f"[{key}]" in ln]
        assert len(lines) <= 2 + res.seconds / 10.0, ("log not throttled", key, lines)
    assert not nt.nonfinite(node.col), nt.nonfinite(node.col)[:5]
    check_poses(node, res.odom)
    assert res.recovered_in is not None, f"not tracking {RECOVER} good frames after the fault: {res.after}"


def check_poses(node: NodeUnderTest, odom: list) -> None:
    """No jump: each step is at most a few times the true motion between the two stamps (monocular: times the
    median scale of the case), and an odometry message while lost (inflated covariance) holds the pose."""
    poses = nt.poses_from_odom(odom, T_BASE_CAM)
    stamps = [dec.stamp_to_sec(m.header.stamp) for m in odom]
    lost = [m.pose.covariance[0] >= LOST_COVARIANCE for m in odom]
    steps, ratios = [], []
    for k in range(1, len(odom)):
        a, b = stamps[k - 1], stamps[k]
        est = float(np.linalg.norm(poses[b][:3, 3] - poses[a][:3, 3]))
        if lost[k]:
            assert est < 1e-9, f"pose moved by {est} while lost (stamp {b})"
        if a in node.gt and b in node.gt:
            true = float(np.linalg.norm(node.gt[b][:3, 3] - node.gt[a][:3, 3]))
            steps.append((est, true, b))
            if true > 1e-3 and est > 0:
                ratios.append(est / true)
    if not ratios:
        return
    scale = float(np.median(ratios))
    typical = float(np.median([e for e, _, _ in steps if e > 0]))
    for est, true, b in steps:
        assert est <= 4.0 * scale * true + 0.5 * typical + 1e-9, \
            f"pose jump at {b}: {est:.4f} for a true motion of {true:.4f} (scale {scale:.3f}, typical {typical:.4f})"


def raw_image(width: int, height: int, encoding: str, step: int, data: bytes, header) -> Image:
    msg = Image(header=header, width=width, height=height, encoding=encoding, step=step)
    msg.data = data
    return msg


# ------------------------------------------------------------------------------------------------ pieces, no node
def test_cause_log_mixes_severities_and_throttles():
    """rclpy refuses one call site with changing severities; a log line must never become an exception."""
    from rclpy.logging import get_logger

    from lightglue_ros.ros.diagnostics import CauseLog

    log = CauseLog(get_logger("test_cause_log"), period=60.0)
    for level in ("info", "warning", "error", "info", "warning"):
        log(f"cause.{level}", "text", level)
    assert log.counts == {"cause.info": 2, "cause.warning": 2, "cause.error": 1}


def test_stamp_watch_reports_backwards_duplicates_and_gaps():
    from lightglue_ros.ros.sync import StampWatch

    watch = StampWatch()
    seen = [watch.check(100.0 + 0.1 * k)[0] for k in range(10)]
    assert seen == [""] * 10
    assert watch.check(100.9) == ("duplicate", 0.0)
    kind, dt = watch.check(131.0)
    assert kind == "gap" and abs(dt - 30.1) < 1e-9
    kind, dt = watch.check(50.0)
    assert kind == "backwards" and abs(dt - 81.0) < 1e-9
    assert [watch.check(t)[0] for t in (50.1, 50.2, 51.9)] == ["", "", ""]  # 1.7 s: under 20 frame intervals
    assert watch.check(55.0)[0] == "gap"


def test_stamp_pairer_gives_an_image_its_outcome_once_no_depth_can_pair_it():
    from lightglue_ros.ros.sync import StampPairer

    p = StampPairer(slop=0.02)
    assert p.add_depth(9.9, "stale") == ([], [])
    assert p.add_image(10.0, "i10") == ([], [])  # its depth is 0.1 s older: too old
    pairs, evicted = p.add_depth(10.1, "d11")  # depth is in stamp order: nothing can pair i10 any more
    assert pairs == [] and evicted == ["i10"]
    assert p.add_image(10.1, "i11") == ([("i11", "d11")], [])


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def mono(tmp_path_factory):
    node = start_node("mono", tmp_path_factory)
    # Before any CameraInfo: the frames wait (skipped), the node warns once. Kept here, where it is sure to be first.
    before = node.diag()
    for _ in range(3):
        f = node.scene.frame(node.i)
        node.send(image_msg=node.image_msg(f.image, node.t))
    node.no_info = (before, node.diag(), node.proc.output())
    yield node
    stop_node(node)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    node = start_node("learned", tmp_path_factory)
    yield node
    stop_node(node)


@pytest.fixture(scope="module")
def rgbd(tmp_path_factory):
    node = start_node("rgbd", tmp_path_factory)
    yield node
    stop_node(node)


# ------------------------------------------------------------------------------------------------ calibration
def test_no_camera_info_yet_skips_and_warns_once(mono):
    before, after, log = mono.no_info
    assert after.get("skipped.no camera_info", 0) - before.get("skipped.no camera_info", 0) == 3, after
    lines = [ln for ln in log.splitlines() if "[skipped.no camera_info]" in ln]
    assert len(lines) == 1 and "WARN" in lines[0] and "camera_info" in lines[0], lines
    assert mono.proc.alive()
    mono.prepare(reset=False)  # the first CameraInfo arrives: tracking starts


@pytest.mark.parametrize("name,mutate,reason", [
    ("K all zero", lambda m: setattr(m, "k", [0.0] * 9), "failed.bad_camera_info_k"),
    ("unknown distortion model", lambda m: setattr(m, "distortion_model", "kannala_brandt_x"),
     "failed.bad_camera_info_unknown_model"),
    ("size differs from the image", lambda m: (setattr(m, "width", 2 * W), setattr(m, "height", 2 * H)),
     "failed.camera_info_size_mismatch"),
])
def test_bad_camera_info(mono, name, mutate, reason):
    def fault(node: NodeUnderTest) -> None:
        for _ in range(2):
            f = node.scene.frame(node.i)
            node.i += 1
            info = conv.camera_info_msg(f.camera, node.header(node.t))
            mutate(info)
            node.send(f.image, f.camera, info=info)
    check_case(mono, run_case(mono, fault), {reason: 2})


# ------------------------------------------------------------------------------------------------ malformed images
def _bad_layout(kind: str):
    def fault(node: NodeUnderTest) -> None:
        f = node.scene.frame(node.i)
        header = node.header(node.t)
        data = np.ascontiguousarray(f.image).tobytes()
        msg = {
            "step": lambda: raw_image(W, H, "rgb8", W * 3 - 1, data[: H * (W * 3 - 1)], header),
            "short": lambda: raw_image(W, H, "rgb8", W * 3, data[: H * W * 3 // 2], header),
            "encoding": lambda: raw_image(W, H, "yuv422", W * 2, data[: H * W * 2], header),
            "zero width": lambda: raw_image(0, H, "rgb8", 0, b"", header),
            "zero height": lambda: raw_image(W, 0, "rgb8", W * 3, b"", header),
        }[kind]()
        node.send(camera=f.camera, image_msg=msg)
    return fault


@pytest.mark.parametrize("kind,reason", [
    ("step", "failed.bad_step"), ("short", "failed.short_data"), ("encoding", "failed.unknown_encoding"),
    ("zero width", "failed.empty_image"), ("zero height", "failed.empty_image"),
])
def test_malformed_image(mono, kind, reason):
    check_case(mono, run_case(mono, _bad_layout(kind)), {reason: 1})


def test_one_pixel_image(mono):
    def fault(node: NodeUnderTest) -> None:
        cam = Camera.pinhole(1, 1, 1.0, 1.0, 0.0, 0.0)
        node.send(np.full((1, 1, 3), 128, np.uint8), cam)
    res = run_case(mono, fault)
    check_case(mono, res, {"failed.image too small": 1, "reset.frame size changed": 0})


def test_4k_frame_is_resized_by_max_image_size(mono):
    def fault(node: NodeUnderTest) -> None:
        for _ in range(3):
            f = node.scene.frame(node.i, (384, 216))  # rendered small, scaled up 10x: a 3840x2160 mono8 frame
            node.i += 1
            big = cv2.resize(cv2.cvtColor(f.image, cv2.COLOR_RGB2GRAY), (3840, 2160), interpolation=cv2.INTER_LINEAR)
            node.send(big, resize.scale_camera(f.camera, 10.0, 10.0), gt=f.gt_pose)
    res = run_case(mono, fault)
    check_case(mono, res, {"reset.frame size changed": 1, "processed.frame size changed": 1})
    assert res.delta("processed") == 3, res.changed()
    u = [conv.cloud_to_numpy(m)["u1"].max() for m in mono.col.matches
         if dec.stamp_to_sec(m.header.stamp) in {dec.stamp_to_sec(o.header.stamp) for o in res.odom}]
    assert max(u) > 1000, "matches are reported in the pixels of the 4K image"


def test_size_change_mid_stream_restarts_from_the_new_size(mono):
    def fault(node: NodeUnderTest) -> None:
        node.good(1, size=(320, 180))  # another camera mode: 16:9
        assert node.until_tracking(RECOVER, size=(320, 180)) is not None, "no tracking at the new size"
    res = run_case(mono, fault)
    check_case(mono, res, {"reset.frame size changed": 1, "processed.frame size changed": 1})
    assert res.delta("reset.frame size changed", "after") == 2  # and once more back at 160x120


# ------------------------------------------------------------------------------------------------ time
def test_stamps_going_backwards_reset_and_say_so(mono):
    def fault(node: NodeUnderTest) -> None:
        node.t -= 50.0  # a bag loop: stamps and scene start over
        node.i = 0
        node.good(1)
    res = run_case(mono, fault)
    check_case(mono, res, {"reset.time jumped backwards": 1, "processed.time jumped backwards": 1})
    line = next(ln for ln in res.log.splitlines() if "[reset.time jumped backwards]" in ln)
    assert "went back 49.900 s" in line and "bag loop" in line, line  # 50 s minus the frame interval


def test_duplicate_stamp_is_skipped(mono):
    def fault(node: NodeUnderTest) -> None:
        f = node.scene.frame(node.i)
        node.i += 1
        t = node.t
        node.send(f.image, f.camera, gt=f.gt_pose)
        node.send(f.image, f.camera, stamp=t)
    check_case(mono, run_case(mono, fault), {"skipped.duplicate stamp": 1, "reset.time jumped backwards": 0})


def test_gap_of_many_seconds_is_reported_and_tracking_goes_on(mono):
    def fault(node: NodeUnderTest) -> None:
        node.t += 30.0
        node.good(2)
    res = run_case(mono, fault)
    check_case(mono, res, {"event.stamp_gap": 1, "reset.time jumped backwards": 0})
    assert res.fault.get("state") == "tracking" and res.delta("processed") == 2, res.changed()
    twist = res.odom[-1].twist.twist.linear
    assert math.isfinite(twist.x) and abs(twist.x) < 10.0


def test_sim_time_with_a_jumping_clock(mono):
    ros = mono.ros
    clock = ros.node.create_publisher(Clock, "/clock", 10)
    sent: List[float] = []

    def fault(node: NodeUnderTest) -> None:
        assert all(ros.set_parameters({"use_sim_time": True}))
        for clock_t in (5000.0, 100.0, 1.0e6, 50.0):  # forwards, backwards, far ahead, back again
            clock.publish(Clock(clock=conv.sec_to_stamp(clock_t)))
            n_diag = len(node.col.diagnostics)
            sent.extend(node.t + DT * k for k in range(3))
            node.good(3)
            assert nt.wait_for(lambda: len(node.col.diagnostics) > n_diag + 2, 5), "diagnostics stopped"
        assert all(ros.set_parameters({"use_sim_time": False}))
    try:
        res = run_case(mono, fault)
    finally:
        ros.set_parameters({"use_sim_time": False})
        ros.node.destroy_publisher(clock)
    check_case(mono, res, {"reset.time jumped backwards": 0})
    odom_stamps = {dec.stamp_to_sec(m.header.stamp) for m in res.odom}
    assert set(np.round(sent, 6)) <= set(np.round(list(odom_stamps), 6)), "odom keeps the image stamps"
    assert res.delta("processed") == len(sent)


# ------------------------------------------------------------------------------------------------ content (lightglue)
def _content(kind: str, frames: int = LOST_AFTER + 1):
    rng = np.random.default_rng(7)

    def image(f: Frame) -> np.ndarray:
        return {
            "black": lambda: np.zeros_like(f.image),
            "white": lambda: np.full_like(f.image, 255),
            "saturated": lambda: np.clip(f.image.astype(np.int32) * 4, 0, 255).astype(np.uint8),
            "noise": lambda: rng.integers(0, 256, f.image.shape, dtype=np.uint8),
        }[kind]()

    def fault(node: NodeUnderTest) -> None:
        for _ in range(frames):
            f = node.scene.frame(node.i)
            node.i += 1
            node.send(image(f), f.camera)
    return fault


@pytest.mark.parametrize("kind", ["black", "white"])
def test_blank_frames_fail_and_leave_the_keyframe_alone(learned, kind):
    res = run_case(learned, _content(kind), reset=False)
    check_case(learned, res, {"failed.blank_image": LOST_AFTER + 1, "event.tracking_lost": 0})
    assert res.recovered_in == 1, "the keyframe survived: the first good frame tracks"


#: Reasons a frame fails when matching finds nothing usable (front end and odometry).
TRACKING_FAILURES = ("failed.no matches", "failed.too few matches", "failed.too few inliers",
                     "failed.too few keypoints", "failed.no pose")


def test_saturated_frames_still_track(learned):
    # Four times overexposed: the bright half clips to white, the dark half keeps texture that LightGlue matches.
    res = run_case(learned, _content("saturated"), reset=False)
    check_case(learned, res, {"event.tracking_lost": 0})
    assert res.delta("processed") == LOST_AFTER + 1 and res.recovered_in == 1, res.changed()


def test_pure_noise_is_lost_then_recovers(learned):
    res = run_case(learned, _content("noise"), reset=False)
    check_case(learned, res, {"event.tracking_lost": 1}, exact=False)
    assert any(m.pose.covariance[0] >= LOST_COVARIANCE for m in res.odom), "lost odom carries the inflated covariance"
    failed = {k: v for k, v in res.changed().items() if k.startswith("failed.")}
    assert sum(failed.values()) >= LOST_AFTER and set(failed) <= set(TRACKING_FAILURES), failed


def test_static_camera_500_frames_does_not_drift(learned):
    node = learned
    node.prepare(reset=False)
    before = node.diag()
    pose = node.scene.frame(node.i, (160, 120))  # small: 500 frames through LightGlue
    rng = np.random.default_rng(3)
    assert node.ros.call_reset().success
    n_odom = len(node.col.odom)
    for _ in range(500):  # the same view with fresh sensor noise every frame
        noisy = np.clip(pose.image + rng.normal(0, 2.0, pose.image.shape), 0, 255).astype(np.uint8)
        node.send(noisy, pose.camera, wait_odom=True)
    after = node.diag()
    odom = node.col.odom[n_odom:]
    first, last = (conv.pose_to_matrix(m.pose.pose) for m in (odom[0], odom[-1]))
    drift = float(np.linalg.norm(last[:3, 3] - first[:3, 3]))
    delta = {k: after.get(k, 0) - before.get(k, 0)
             for k in ("processed", "failed", "skipped", "keyframes", "processed.static")}
    print(f"static: {delta}, drift {drift:.2e}")
    assert delta["processed"] == 500 and delta["failed"] == 0 and delta["skipped"] == 0, delta
    assert delta["processed.static"] >= 498 and delta["keyframes"] == 0, delta
    assert drift < 0.01 and np.allclose(first[:3, :3], last[:3, :3], atol=1e-6), drift
    assert not nt.nonfinite(node.col)


def test_fast_rotation_loses_tracking_then_returns(learned):
    def fault(node: NodeUnderTest) -> None:
        for yaw in SHAKE_YAW_DEG:
            f = node.scene.frame(node.i, yaw_deg=yaw)
            node.i += 1
            node.send(f.image, f.camera, gt=f.gt_pose)
    res = run_case(learned, fault, reset=False)
    check_case(learned, res, {"event.tracking_lost": 1}, exact=False)
    assert any(m.pose.covariance[0] >= LOST_COVARIANCE for m in res.odom), "lost odom carries the inflated covariance"
    failed = {k: v for k, v in res.changed().items() if k.startswith("failed.")}
    assert sum(failed.values()) >= LOST_AFTER and set(failed) <= set(TRACKING_FAILURES), failed


def test_images_around_the_network_minimum(learned):
    def fault(node: NodeUnderTest) -> None:
        for size in ((12, 9), (16, 16), (24, 18), (33, 17)):
            f = node.scene.frame(node.i, (max(16, size[0]), max(16, size[1])))  # the renderer's minimum is 16
            node.i += 1
            image = cv2.resize(f.image, size, interpolation=cv2.INTER_AREA)
            cam = resize.scale_camera(f.camera, size[0] / f.camera.width, size[1] / f.camera.height)
            node.send(image, cam)
    res = run_case(learned, fault, reset=False)
    check_case(learned, res, {"failed.image too small": 1}, exact=False)
    assert not [k for k in res.changed() if "exception" in k or "internal" in k], res.changed()


# ------------------------------------------------------------------------------------------------ depth + compressed
def _depth_fault(kind: str, frames: int = 2):
    def fault(node: NodeUnderTest) -> None:
        for _ in range(frames):
            f = node.scene.frame(node.i)
            node.i += 1
            header = node.header(node.t)
            depth_msg = {
                "zeros": lambda: conv.numpy_to_image(np.zeros((H, W), np.uint16), "16UC1", header),
                "nan": lambda: conv.numpy_to_image(np.full((H, W), np.nan, np.float32), "32FC1", header),
                "size": lambda: conv.numpy_to_image(f.depth[::2, ::2].copy(), "32FC1", header),
                "encoding": lambda: conv.numpy_to_image(f.image, "rgb8", header),
            }[kind]()
            node.send(f.image, f.camera, depth_msg=depth_msg, gt=f.gt_pose)
    return fault


@pytest.mark.parametrize("kind,expect", [
    ("zeros", {"event.depth_no_valid_pixels": 2}),
    ("nan", {"event.depth_no_valid_pixels": 2}),
    ("size", {"failed.depth_size_mismatch": 2}),
    ("encoding", {"failed.depth_unknown_encoding": 2}),
])
def test_bad_depth(rgbd, kind, expect):
    res = run_case(rgbd, _depth_fault(kind))
    check_case(rgbd, res, dict(expect, **{"event.tracking_lost": 0}))
    if kind in ("zeros", "nan"):  # the pose comes from the keyframe's depth: nothing fails
        assert res.delta("processed") == 2 and res.recovered_in == 1, res.changed()


def test_empty_depth_on_the_frame_that_seeds_the_keyframe(rgbd):
    """Right after a reset the next frame would become the keyframe: with no valid depth nothing could be tracked
    from it, so it is refused (failed, with the reason) and the next good frame seeds instead; nothing gets lost."""
    def fault(node: NodeUnderTest) -> None:
        assert node.ros.call_reset().success  # applied before the next frame, which then seeds
        f = node.scene.frame(node.i)
        node.i += 1
        zeros = conv.numpy_to_image(np.zeros((H, W), np.float32), "32FC1", node.header(node.t))
        node.send(f.image, f.camera, depth_msg=zeros, gt=f.gt_pose)
    res = run_case(rgbd, fault)
    check_case(rgbd, res, {"event.depth_no_valid_pixels": 1, f"failed.{SEED_DEPTH_KEY}": 1})
    EMPTY_SEED.append(res.recovered_in)
    assert res.delta("event.tracking_lost", "after") == 0, res.changed("after")
    assert len(res.odom) == res.delta("processed", "after"), "odometry for processed frames only"
    assert not any(m.pose.covariance[0] >= LOST_COVARIANCE for m in res.odom)


#: Reason key of a refused RGB-D keyframe, as the node counts it.
SEED_DEPTH_KEY = reason_key(REASON_SEED_DEPTH)
EMPTY_SEED: List[Optional[int]] = []  # good frames to tracking after an empty-depth seed (the test above)


def test_empty_depth_seed_is_replaced_by_the_next_good_frame(rgbd):
    if not EMPTY_SEED:
        test_empty_depth_on_the_frame_that_seeds_the_keyframe(rgbd)
    assert EMPTY_SEED[-1] is not None and EMPTY_SEED[-1] <= 2, f"tracking after {EMPTY_SEED[-1]} good frames"


def test_depth_older_than_sync_slop_is_skipped(rgbd):
    def fault(node: NodeUnderTest) -> None:
        f = node.scene.frame(node.i)
        node.i += 1
        t = node.t
        stale = conv.numpy_to_image(f.depth, "32FC1", node.header(t - 0.1))  # sync_slop is 0.02 s
        node.send(f.image, f.camera, depth_msg=stale, outcomes=0)
        node.good(1, outcomes=2)  # its depth arrives: the waiting image can never pair any more
    check_case(rgbd, run_case(rgbd, fault), {"skipped.no_depth_within_sync_slop": 1})


def test_corrupt_compressed_bytes(rgbd):
    def fault(node: NodeUnderTest) -> None:
        f = node.scene.frame(node.i)
        node.i += 1
        png = bytes(conv.numpy_to_compressed(f.image, "png").data)
        for data in (np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes(), png[: len(png) // 2]):
            msg = CompressedImage(header=node.header(node.t), format="png")
            msg.data = data
            node.send(camera=f.camera, image_msg=msg, depth=f.depth)
    check_case(rgbd, run_case(rgbd, fault), {"failed.decode_failed": 2})
