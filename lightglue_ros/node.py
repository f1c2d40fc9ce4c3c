"""ROS 2 node ``lightglue_matcher``: camera in, odometry / TF / path / matches / diagnostics out.

A thin adapter around `pipeline.Pipeline`: it converts messages (`conversions`), hands the newest frame to one
worker thread, and publishes what the pipeline returns. No vision or geometry is decided here.

Frames: ``odom`` is the base frame at the first image. The pipeline's poses are ``T_world_cam`` with world = the
first camera optical frame; the node publishes ``T_odom_base = T_base_cam . T_world_cam . T_base_cam^-1``, with
``T_base_cam`` (camera-to-base extrinsic) from TF when tf2_ros imports, else from the ``camera_to_base``
parameter (identity when ``base_frame`` is the image's frame). Covariances go through the same transform.

Real time: subscription callbacks only store messages. One worker thread processes the newest frame; a frame
replaced before the worker took it is counted as skipped (reason ``dropped``). Every received image ends in
exactly one outcome (processed / skipped / failed, with a reason), counted in /diagnostics.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from . import conversions as conv
from .frontend import FrontEndConfig, check_image
from .odometry import OdometryConfig
from .types import FAILED, LOST, PROCESSED, SKIPPED, TRACKING, Camera, FrameOutcome

NODE_NAME = "lightglue_matcher"

# ------------------------------------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: where it goes, its default, its description and its valid values."""

    name: str
    default: Any
    description: str
    target: str = "node"  # node | frontend | odometry
    field: str = ""  # config field name when it differs from the parameter name
    covers: str = ""  # "odometry.use_depth": a node parameter that also stands for this core field
    lo: Optional[float] = None  # inclusive numeric range (declared as an Integer/FloatingPointRange)
    hi: Optional[float] = None
    choices: Tuple[str, ...] = ()

    @property
    def config_field(self) -> str:
        return self.field or self.name


_BIG = 1_000_000_000

#: The node's own parameters (the front end / odometry ones follow from their config dataclasses below).
NODE_PARAMS: Tuple[ParamSpec, ...] = (
    ParamSpec("odom_frame", "odom", "Frame of the published pose (odom origin = base pose at the first image)."),
    ParamSpec("base_frame", "base_link", "Child frame of odom: the robot body the camera is mounted on."),
    ParamSpec("camera_frame", "camera_optical_frame",
              "Camera optical frame used when an image header has an empty frame_id."),
    ParamSpec("publish_tf", True, "Broadcast the odom_frame -> base_frame transform."),
    ParamSpec("publish_when_lost", True,
              "While tracking is lost: true publishes odom with inflated covariance, false publishes nothing."),
    ParamSpec("qos", "sensor_data", "Input QoS: sensor_data (best effort) or reliable. A reliable subscriber "
              "never hears a best-effort camera.", choices=("sensor_data", "reliable")),
    ParamSpec("queue_size", 5, "History depth of the input subscriptions.", lo=1, hi=100),
    ParamSpec("image_transport", "raw", "raw: subscribe sensor_msgs/Image on 'image'; compressed: "
              "sensor_msgs/CompressedImage on 'image/compressed'.", choices=("raw", "compressed")),
    ParamSpec("use_depth", False, "RGB-D mode: subscribe 'depth' (16UC1 mm or 32FC1 m, registered to the image), "
              "pair it by stamp and estimate metric odometry.", covers="odometry.use_depth"),
    ParamSpec("sync_slop", 0.02, "Largest image/depth stamp difference paired (s).", lo=0.0, hi=1.0),
    ParamSpec("path_max_length", 1000, "Poses kept in the published path (0 = no path).", lo=0, hi=_BIG),
    ParamSpec("max_image_size", 0, "Longer image side processed (px); larger frames are resized, intrinsics "
              "scaled and keypoints scaled back (0 = full size).", lo=0, hi=16384),
    ParamSpec("camera_to_base", list(conv.OPTICAL_TO_BODY_XYZQ),
              "Pose of the camera optical frame in base_frame, x y z qx qy qz qw, used when TF has none "
              "(default: forward-looking camera at the base origin, REP-103 optical -> body)."),
    ParamSpec("tf_timeout", 1.0, "Seconds to wait for the camera->base TF (tf2_ros only) before falling back "
              "to camera_to_base.", lo=0.0, hi=60.0),
    ParamSpec("mask_file", "", "Mono image file, non-zero = ignore (robot body), the size of the camera image; "
              "applied by the node so it follows max_image_size.", covers="frontend.static_mask"),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", lo=0.05, hi=3600.0),
)

#: Descriptions and ranges of the front end's fields (FrontEndConfig). Defaults come from the dataclass.
FRONTEND_DOCS: Dict[str, Tuple[str, Optional[float], Optional[float], Tuple[str, ...]]] = {
    "backend": ("Matcher: lightglue (ALIKED + LightGlue), orb, sift or hf (a transformers model, hf_model; "
                "needs pip install .[hf]).", None, None, ("lightglue", "orb", "sift", "hf")),
    "max_keypoints": ("Keypoints per frame (top-k; -1 = all above detection_threshold).", -1, 100000, ()),
    "detector": ("lightglue backend's keypoints: aliked (ALIKED's score map) or dog (OpenCV difference-of-"
                 "Gaussians: more precise poses on easy real pairs, ~30 % slower on a CPU, weaker on small frames); "
                 "ALIKED describes both.", None, None, ("aliked", "dog")),
    "detection_threshold": ("ALIKED score threshold (0 = top-k mode; detector aliked only).", 0.0, 1.0, ()),
    "nms_radius": ("ALIKED non-maximum suppression radius (px; detector aliked only).", 0, 32, ()),
    "aliked_model": ("ALIKED variant.", None, None, ("aliked-t16", "aliked-n16", "aliked-n16rot", "aliked-n32")),
    "depth_confidence": ("LightGlue adaptive depth (early exit) confidence; -1 disables.", -1.0, 1.0, ()),
    "width_confidence": ("LightGlue adaptive width (point pruning) confidence; -1 disables.", -1.0, 1.0, ()),
    "filter_threshold": ("Minimum match score kept.", 0.0, 1.0, ()),
    "device": ("Torch device: auto, cpu or cuda.", None, None, ("auto", "cpu", "cuda")),
    "precision": ("Inference precision: auto, fp32 or fp16 (CUDA only).", None, None, ("auto", "fp32", "fp16")),
    "num_threads": ("Torch CPU threads (0 = torch default).", 0, 256, ()),
    "weights": ("LightGlue checkpoint path ('' = find the installed one).", None, None, ()),
    "aliked_weights": ("ALIKED checkpoint path ('' = find the installed one).", None, None, ()),
    "colour": ("Feed colour images to ALIKED (false: grey).", None, None, ()),
    "specular_threshold": ("Ignore pixels at or above this brightness (0 = off).", 0, 255, ()),
    "min_keypoints": ("Fewer keypoints than this in a frame: no matching (the frame fails with a reason).", 0, 100000, ()),
    "ratio_test": ("ORB/SIFT: Lowe's ratio test threshold.", 0.0, 1.0, ()),
    "refine_matches": ("lightglue backend: align each matched point to its reference patch (sub-pixel, "
                       "translation only) before the pose; ~45 ms per 500 matches on a CPU.", None, None, ()),
    "hf_model": ("hf backend: hub id (ETH-CVG/lightglue_superpoint, zju-community/efficientloftr) or a folder "
                 "with a saved model and image processor.", None, None, ()),
    "hf_threshold": ("hf backend: match score threshold (-1 = the model's own).", -1.0, 1.0, ()),
    "hf_track_radius": ("hf backend, detector-free models: a new match within this of a reference point keeps "
                        "its track id (px).", 0.0, 100.0, ()),
}

#: Descriptions and ranges of the odometry core's fields (OdometryConfig).
ODOMETRY_DOCS: Dict[str, Tuple[str, Optional[float], Optional[float], Tuple[str, ...]]] = {
    "ransac_threshold_px": ("RANSAC inlier threshold (px).", 0.01, 100.0, ()),
    "ransac_confidence": ("RANSAC confidence.", 0.0, 1.0, ()),
    "ransac_max_iterations": ("RANSAC iteration cap.", 1, 1000000, ()),
    "min_matches": ("Fewer matches than this: no pose for the frame.", 5, 100000, ()),
    "min_inliers": ("Fewer RANSAC inliers than this: no pose for the frame.", 5, 100000, ()),
    "min_parallax_px": ("Median inlier flow below this: the camera is static, pose held.", 0.0, 1000.0, ()),
    "keyframe_min_tracked": ("New keyframe when the fraction of keyframe points still matched drops below.",
                             0.0, 1.0, ()),
    "keyframe_min_inliers": ("New keyframe when inliers drop below.", 0, 100000, ()),
    "keyframe_max_parallax_px": ("New keyframe when the median parallax grows past (px).", 0.0, 10000.0, ()),
    "lost_after": ("Consecutive failed frames before the state becomes lost.", 1, 100000, ()),
    "lost_policy": ("When lost: reset (re-initialise from the next good frame) or hold (keep the keyframe).",
                    None, None, ("reset", "hold")),
    "lost_covariance": ("Variance put on the pose covariance diagonal while lost (m^2, rad^2).", 0.0, 1e12, ()),
    "min_depth": ("Nearest valid depth (m).", 0.0, 1000.0, ()),
    "max_depth": ("Farthest valid depth (m).", 0.0, 1000.0, ()),
    "depth_interpolation": ("Depth lookup at keypoints: nearest or bilinear.", None, None, ("nearest", "bilinear")),
    "init_min_parallax_px": ("Monocular: rotation-compensated flow needed to initialise (px).", 0.0, 10000.0, ()),
}


#: Core fields that are deliberately not parameters, and why (the coverage test reads this).
NOT_PARAMETERS: Dict[str, str] = {
    "frontend.auto_promote": "the pipeline fixes it to false: the odometry chooses keyframes",
}


def _config_specs(cls, docs, target: str, taken: set) -> List[ParamSpec]:
    """One ParamSpec per dataclass field not already covered by a node parameter."""
    specs = []
    for f in dataclasses.fields(cls):
        if f.name in taken:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        # A field added to the core without documentation here still becomes a parameter (tests flag it).
        desc, lo, hi, choices = docs.get(f.name, (f"{cls.__name__}.{f.name} (undocumented)", None, None, ()))
        specs.append(ParamSpec(f.name, default, desc, target=target, lo=lo, hi=hi, choices=choices))
    return specs


def parameter_table() -> List[ParamSpec]:
    """Every parameter the node declares, in declaration order (the YAML lists the same, with defaults)."""
    node = list(NODE_PARAMS)
    covered = {p.covers for p in node if p.covers} | set(NOT_PARAMETERS)
    fe_taken = {c.split(".")[1] for c in covered if c.startswith("frontend.")}
    od_taken = {c.split(".")[1] for c in covered if c.startswith("odometry.")}
    return (node + _config_specs(FrontEndConfig, FRONTEND_DOCS, "frontend", fe_taken)
            + _config_specs(OdometryConfig, ODOMETRY_DOCS, "odometry", od_taken))


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(name=spec.name, description=spec.description, read_only=True)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.lo is not None and isinstance(spec.default, bool) is False:
        if isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.lo), to_value=int(spec.hi), step=1)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.lo), to_value=float(spec.hi),
                                                         step=0.0)]
    return d


class ParameterError(ValueError):
    """A parameter value the node cannot start with."""


def load_mask_file(path: str) -> Optional[np.ndarray]:
    """mask_file -> HxW bool (True = ignore), None when unset; an unreadable file is a start-up error."""
    from .frontend import FrontEndError, load_mask_image

    try:
        return load_mask_image(path)
    except FrontEndError as exc:
        raise ParameterError(f"parameter 'mask_file': {exc}") from None


@dataclass
class NodeSettings:
    odom_frame: str
    base_frame: str
    camera_frame: str
    publish_tf: bool
    publish_when_lost: bool
    qos: str
    queue_size: int
    image_transport: str
    use_depth: bool
    sync_slop: float
    path_max_length: int
    max_image_size: int
    camera_to_base: np.ndarray  # 4x4 T_base_cam
    tf_timeout: float
    mask_file: str
    diagnostics_period: float


def declare_all(node: Node) -> Dict[str, Any]:
    """Declare every parameter (read-only, described, ranged); a bad value raises ParameterError."""
    values = {}
    for spec in parameter_table():
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
        except ParameterException as exc:
            raise ParameterError(f"parameter '{spec.name}': {exc}") from exc
        if spec.choices and values[spec.name] not in spec.choices:
            raise ParameterError(f"parameter '{spec.name}' must be one of {', '.join(spec.choices)}; "
                                 f"got '{values[spec.name]}'")
    return values


def build_configs(values: Dict[str, Any]) -> Tuple[NodeSettings, FrontEndConfig, OdometryConfig]:
    """Split declared values into the node's settings and the core's configs."""
    fe, od = {}, {}
    for spec in parameter_table():
        if spec.target == "frontend":
            fe[spec.config_field] = values[spec.name]
        elif spec.target == "odometry":
            od[spec.config_field] = values[spec.name]
    od["use_depth"] = values["use_depth"]  # one switch: subscribe depth and use it
    fe["static_mask"] = ""  # mask_file is loaded by the node (it must be resized with the frame)
    if values["min_depth"] >= values["max_depth"]:
        raise ParameterError(f"min_depth ({values['min_depth']}) must be below max_depth ({values['max_depth']})")
    try:
        T_base_cam = conv.transform_from_xyzq(values["camera_to_base"])
    except ValueError as exc:
        raise ParameterError(f"parameter 'camera_to_base': {exc}") from exc
    node_fields = {f.name for f in dataclasses.fields(NodeSettings)}
    settings = NodeSettings(**{k: values[k] for k in node_fields if k != "camera_to_base"}, camera_to_base=T_base_cam)
    return settings, FrontEndConfig(**fe), OdometryConfig(**od)


# ------------------------------------------------------------------------------------------------ plumbing


@dataclass
class FrameInput:
    """What the callbacks hand the worker: raw messages, converted by the worker (callbacks stay cheap)."""

    image: Any  # Image or CompressedImage
    depth: Optional[Image] = None
    received: float = 0.0  # monotonic arrival time


@dataclass
class ConvertedFrame:
    """A frame that passed the node's input checks, as arrays."""

    image: np.ndarray
    camera: Camera
    depth: Optional[np.ndarray]
    mask: Optional[np.ndarray]
    frame_id: str
    stamp: float


class FrameRejected(Exception):
    """The node turns a frame away before the pipeline: its outcome, counting key and log text."""

    def __init__(self, outcome: str, reason: str, text: str, level: str = "warning"):
        super().__init__(text)
        self.outcome, self.reason, self.text, self.level = outcome, reason, text, level


class CameraInfos:
    """Recent CameraInfo messages; the image gets the one with its own stamp when it is here, else the newest.

    A driver stamps image and info alike. Preferring that pair keeps a mode change (new size, new intrinsics)
    consistent even when the next info already arrived. Each message is converted once (the result or the
    error is cached, so a bad info fails every frame it is used for, not only the first).
    """

    def __init__(self, keep: int = 8):
        self._lock = threading.Lock()
        self._msgs: Deque[CameraInfo] = collections.deque(maxlen=keep)
        self._cached: Tuple[Optional[CameraInfo], Optional[Camera], Optional[conv.ConversionError]] = (None, None, None)

    def add(self, msg: CameraInfo) -> None:
        with self._lock:
            self._msgs.append(msg)

    def camera_for(self, stamp: float) -> Optional[Camera]:
        """The Camera for an image stamp; None before any CameraInfo; raises ConversionError for a bad one."""
        with self._lock:
            msgs = list(self._msgs)
        if not msgs:
            return None
        msg = next((m for m in reversed(msgs) if conv.stamp_to_sec(m.header.stamp) == stamp), msgs[-1])
        if msg is not self._cached[0]:
            try:
                self._cached = (msg, conv.camera_from_msg(msg), None)
            except conv.ConversionError as exc:
                self._cached = (msg, None, exc)
        if self._cached[2] is not None:
            raise self._cached[2]
        return self._cached[1]


class StampPairer:
    """Pairs each image with a depth image whose stamp is within ``slop`` (ApproximateTime for two topics).

    message_filters is not installable from PyPI, and two streams from one RGB-D driver carry equal or nearly
    equal stamps, so first-fit pairing is enough. Bounded: at most ``capacity`` of each kind wait.
    Returns ``(pairs, evicted)``: evicted images will never be paired (an older image lost its chance when a
    newer one paired; or the buffer overflowed).
    """

    def __init__(self, slop: float, capacity: int = 8):
        self.slop = slop
        self.images: Deque[Tuple[float, Any]] = collections.deque()
        self.depths: Deque[Tuple[float, Any]] = collections.deque(maxlen=capacity)
        self.capacity = capacity

    def add_image(self, stamp: float, item: Any) -> Tuple[List[Tuple[Any, Any]], List[Any]]:
        self.images.append((stamp, item))
        evicted = []
        while len(self.images) > self.capacity:
            evicted.append(self.images.popleft()[1])
        pairs, older = self._match()
        return pairs, evicted + older

    def add_depth(self, stamp: float, item: Any) -> Tuple[List[Tuple[Any, Any]], List[Any]]:
        self.depths.append((stamp, item))
        pairs, evicted = self._match()
        # A depth stream is in stamp order: once a depth newer than an image + slop arrived, no later depth can
        # pair with that image, so it gets its outcome now instead of waiting for the buffer to overflow.
        while self.images and self.images[0][0] < stamp - self.slop:
            evicted.append(self.images.popleft()[1])
        return pairs, evicted

    def _match(self) -> Tuple[List[Tuple[Any, Any]], List[Any]]:
        """Pair the newest image that has a depth within slop; older waiting images are evicted."""
        for i in range(len(self.images) - 1, -1, -1):
            stamp, image = self.images[i]
            best = min(range(len(self.depths)), key=lambda j: abs(self.depths[j][0] - stamp), default=None)
            if best is None or abs(self.depths[best][0] - stamp) > self.slop:
                continue
            depth = self.depths[best][1]
            evicted = [self.images[k][1] for k in range(i)]
            for _ in range(i + 1):
                self.images.popleft()
            for _ in range(best + 1):  # this depth and older ones are used up
                self.depths.popleft()
            return [(image, depth)], evicted
        return [], []


class NewestSlot:
    """One-frame mailbox: ``put`` replaces (and returns) the waiting frame; the worker ``take``s the newest."""

    def __init__(self):
        self._item = None
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item) -> Optional[Any]:
        with self._cond:
            old, self._item = self._item, item
            self._cond.notify()
            return old

    def take(self, timeout: float = 0.2) -> Optional[Any]:
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


_MAX_REASONS = 64  # distinct reason / event keys kept; later new ones count as "other" (memory stays bounded)


def reason_key(reason: str) -> str:
    """A bounded counting key for a free-text reason: its first clause, numbers and details removed.

    "image 320x240 does not match camera_info 640x480" -> "image NxN does not match camera_info NxN";
    "invalid camera: focal length ..." -> "invalid camera"; "time jumped backwards; too few matches" -> the cause.
    """
    text = re.sub(r"\([^)]*\)", "", reason)  # details first: "(scale: a prior)" must not split at its ':'
    text = text.split(";")[0].split(":")[0]
    text = re.sub(r"[-+]?\d+(\.\d+)?", "N", text)
    return " ".join(text.split()) or "unknown"


#: An image whose pixels all lie within this many grey levels (8-bit; x256 for 16-bit) is blank: black, white.
BLANK_RANGE = 2

#: The pipeline resets itself before a frame for these causes, and the frame's reason then starts with the cause
#: (pipeline.py); the node counts them as ``reset.<cause>`` and says so in the log.
PIPELINE_RESETS = ("frame size changed", "time jumped backwards")


class OutcomeCounters:
    """Thread-safe counts by outcome and reason, events, plus per-period sums for /diagnostics.

    Keys: ``skipped.<reason>`` / ``failed.<reason>`` (every such frame), ``processed.<reason>`` (processed frames
    that carry a note: static, initialising, first frame, ...), ``reset.<cause>`` and ``event.<name>`` (things
    that happened to the stream without deciding a frame's outcome: stamp gaps, tracking lost, empty depth).
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.received = 0
        self.totals = collections.Counter()  # processed / skipped / failed
        self.reasons = collections.Counter()  # "<outcome>.<reason>", "reset.<cause>", "event.<name>"
        self.matches_images = 0
        self.keyframes = 0
        self.last_stamp = float("nan")  # stamp of the newest frame with an outcome
        self.window = collections.Counter()  # sums since the last diagnostics message
        self.state = "initializing"
        self.device = ""
        self.backend = ""
        self.n_layers = 0

    def count_received(self) -> None:
        with self.lock:
            self.received += 1
            self.window["received"] += 1

    def count(self, outcome: str, reason: str = "", stamp: Optional[float] = None) -> None:
        with self.lock:
            self.totals[outcome] += 1
            self.window[outcome] += 1
            if stamp is not None:
                self.last_stamp = stamp
            if outcome != PROCESSED or reason:
                self._bump(outcome, reason_key(reason))

    def event(self, kind: str, name: str) -> None:
        """``kind`` "reset" or "event"; ``name`` a short stable key."""
        with self.lock:
            self._bump(kind, name)

    def _bump(self, prefix: str, name: str) -> None:
        key = f"{prefix}.{name}"
        if key not in self.reasons and len(self.reasons) >= _MAX_REASONS:
            key = f"{prefix}.other"
        self.reasons[key] += 1

    def add_telemetry(self, out: FrameOutcome) -> None:
        with self.lock:
            w = self.window
            for key in ("extract_ms", "match_ms", "pose_ms", "total_ms"):
                w[key] += getattr(out, key)
            if out.track is not None:
                tel = out.track.telemetry
                w["timed"] += 1
                w["stop_layer"] += tel.stop_layer
                w["pruned"] += tel.pruned0 + tel.pruned1
                w["keypoints"] += tel.keypoints0 + tel.keypoints1
                w["matches"] += out.track.num_matches
                self.device, self.backend, self.n_layers = tel.device, tel.backend, tel.n_layers
            if out.odometry is not None:
                w["with_pose"] += 1
                w["inliers"] += out.odometry.inliers
                self.state = out.odometry.state
                self.keyframes += int(bool(out.odometry.keyframe))

    def total(self) -> int:
        with self.lock:
            return sum(self.totals.values())

    def snapshot(self) -> Tuple[int, collections.Counter, collections.Counter, collections.Counter]:
        """(received, totals, reasons, window) and a fresh window."""
        with self.lock:
            window, self.window = self.window, collections.Counter()
            return self.received, collections.Counter(self.totals), collections.Counter(self.reasons), window


class StampWatch:
    """Watches image stamps for what a bag loop, a restarted driver or a stalled camera looks like.

    ``check(stamp)`` -> ("backwards" | "duplicate" | "gap" | "", seconds): a stamp older than the previous one,
    the same stamp again, or a forward jump much longer than the usual frame interval (``GAP_FACTOR`` times the
    median of the recent intervals, and at least ``GAP_MIN_S``). It only reports; the pipeline decides resets.
    """

    GAP_MIN_S = 1.0
    GAP_FACTOR = 20.0

    def __init__(self, history: int = 30):
        self.last: Optional[float] = None
        self.intervals: Deque[float] = collections.deque(maxlen=history)

    def check(self, stamp: float) -> Tuple[str, float]:
        last, self.last = self.last, stamp
        if last is None:
            return "", 0.0
        dt = stamp - last
        if dt < 0:
            self.intervals.clear()  # a new recording: its frame rate may differ
            return "backwards", -dt
        if dt == 0:
            return "duplicate", 0.0
        usual = float(np.median(self.intervals)) if self.intervals else 0.0
        self.intervals.append(dt)
        if usual > 0 and dt > max(self.GAP_MIN_S, self.GAP_FACTOR * usual):
            return "gap", dt
        return "", dt


class CauseLog:
    """Log each distinct cause once, then at most every ``period`` seconds with its count (no log floods).

    Lines start with ``[cause]``; for frame outcomes and events the cause is the /diagnostics key
    (``failed.bad_step``, ``reset.time jumped backwards``, ``event.stamp_gap``), so logs and counts line up.
    """

    def __init__(self, logger, period: float = 10.0):
        self.logger, self.period = logger, period
        self.last: Dict[str, float] = {}
        self.counts = collections.Counter()

    def __call__(self, cause: str, text: str, level: str = "warning") -> None:
        self.counts[cause] += 1
        now = time.monotonic()
        if cause in self.last and now - self.last[cause] < self.period:
            return
        self.last[cause] = now
        n = self.counts[cause]
        line = f"[{cause}] {text}" + ("" if n == 1 else f" ({n} times so far)")
        # One call site per severity: rclpy refuses a call site whose severity changes ("Logger severity cannot be
        # changed between calls"), which would turn a log line into an exception in the worker.
        if level == "error":
            self.logger.error(line)
        elif level == "info":
            self.logger.info(line)
        else:
            self.logger.warning(line)


class Extrinsic:
    """T_base_cam: identity when base_frame is the camera frame, else TF (tf2_ros) or the parameter.

    Latched once known: a camera mount does not move, and a changing extrinsic would make odometry jump.
    """

    def __init__(self, node: Node, settings: NodeSettings):
        self.node, self.settings = node, settings
        self.T: Optional[np.ndarray] = None
        self.buffer = None
        self.first_try: Optional[float] = None
        try:
            import tf2_ros

            self.buffer = tf2_ros.Buffer()
            self.listener = tf2_ros.TransformListener(self.buffer, node)
        except ImportError:
            pass

    def get(self, camera_frame: str) -> Tuple[Optional[np.ndarray], str]:
        """(T_base_cam, "") or (None, reason to skip the frame for now)."""
        if self.T is not None:
            return self.T, ""
        if camera_frame == self.settings.base_frame:
            self.T = np.eye(4)
        elif self.buffer is None:
            self.T = self.settings.camera_to_base
        else:
            self.T = self._from_tf(camera_frame)
            if self.T is None:
                return None, "waiting_for_extrinsic_tf"
        return self.T, ""

    def _from_tf(self, camera_frame: str) -> Optional[np.ndarray]:
        from rclpy.time import Time

        now = time.monotonic()
        self.first_try = self.first_try or now
        try:
            tf = self.buffer.lookup_transform(self.settings.base_frame, camera_frame, Time())
            return conv.transform_to_matrix(tf.transform)
        except Exception as exc:  # noqa: BLE001 - tf2 raises several lookup exception types
            if now - self.first_try < self.settings.tf_timeout:
                return None
            self.node.get_logger().warning(
                f"no TF {self.settings.base_frame} <- {camera_frame} after {self.settings.tf_timeout:.1f} s "
                f"({exc}); using parameter camera_to_base")
            return self.settings.camera_to_base


class TfOut:
    """odom -> base TF: tf2_ros broadcaster, else a tf2_msgs/TFMessage on /tf, else nothing (logged once)."""

    def __init__(self, node: Node):
        self.send: Optional[Callable] = None
        try:
            import tf2_ros

            broadcaster = tf2_ros.TransformBroadcaster(node)
            self.send = broadcaster.sendTransform
            return
        except ImportError:
            pass
        try:
            from tf2_msgs.msg import TFMessage

            pub = node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))
            self.send = lambda tf: pub.publish(TFMessage(transforms=[tf]))
        except ImportError:
            node.get_logger().info("tf2_ros and tf2_msgs are not installed: the odom -> base TF is not published")


class ReferenceImages:
    """Images the matches image may need: the current keyframe and a few recent frames, by stamp (bounded)."""

    def __init__(self, recent: int = 4):
        self.recent: Deque[Tuple[float, np.ndarray]] = collections.deque(maxlen=recent)
        self.keyframe: Optional[Tuple[float, np.ndarray]] = None

    def remember(self, stamp: float, image: np.ndarray, keyframe: bool) -> None:
        self.recent.append((stamp, image))
        if keyframe:
            self.keyframe = (stamp, image)

    def get(self, stamp: Optional[float]) -> Optional[np.ndarray]:
        for s, img in ([self.keyframe] if self.keyframe else []) + list(self.recent):
            if stamp is not None and abs(s - stamp) < 1e-9:
                return img
        return None

    def clear(self) -> None:
        self.recent.clear()
        self.keyframe = None


# ------------------------------------------------------------------------------------------------ the node


def input_qos(settings: NodeSettings) -> QoSProfile:
    if settings.qos == "sensor_data":
        qos = QoSProfile(depth=settings.queue_size)
        qos.reliability = qos_profile_sensor_data.reliability
        qos.durability = qos_profile_sensor_data.durability
        qos.history = HistoryPolicy.KEEP_LAST
        return qos
    return QoSProfile(depth=settings.queue_size, reliability=ReliabilityPolicy.RELIABLE)


class MatcherNode(Node):
    """Subscribes image / camera_info / depth / mask; publishes odom, TF, path, matches, matches/image, diagnostics."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.settings, fe_cfg, od_cfg = build_configs(declare_all(self))
        self._warn_unknown_overrides()
        from .pipeline import Pipeline, PipelineConfig  # torch + weights load here: the slow part of start-up

        try:
            self.pipeline = Pipeline(PipelineConfig(frontend=fe_cfg, odometry=od_cfg))
        except ValueError as exc:  # FrontEndError and config checks of the core
            raise ParameterError(str(exc)) from exc
        self.fe_cfg, self.od_cfg = fe_cfg, od_cfg
        self.static_mask = load_mask_file(self.settings.mask_file)
        self.log_cause = CauseLog(self.get_logger())
        self.counters = OutcomeCounters()
        self.slot = NewestSlot()
        self.pairer = StampPairer(self.settings.sync_slop)
        self.pair_lock = threading.Lock()
        self.refs = ReferenceImages()
        self.path: Deque = collections.deque(maxlen=max(1, self.settings.path_max_length))
        self.infos = CameraInfos()
        self.stamps = StampWatch()
        self._went_back = 0.0  # seconds the current frame's stamp went back (0: it did not)
        self._state = "initializing"  # tracking state after the last frame (for lost / recovered log lines)
        self._lost_since = 0  # frames since tracking was lost (0 = not lost)
        self.mask_msg: Optional[Image] = None
        self.reset_requested = threading.Event()
        self.stopping = threading.Event()
        self.extrinsic = Extrinsic(self, self.settings)
        self._last_diag = time.monotonic()
        self._make_publishers()
        self._make_subscriptions()
        self.worker = threading.Thread(target=self._work, name="lightglue_worker", daemon=True)
        self.worker.start()
        self.get_logger().info(
            f"ready: backend {fe_cfg.backend}, device {self.pipeline_device()}, "
            f"{'RGB-D' if self.settings.use_depth else 'monocular'}, input QoS {self.settings.qos}, "
            f"transport {self.settings.image_transport}")

    # ---- set-up ------------------------------------------------------------------------------------------
    def pipeline_device(self) -> str:
        fe = getattr(self.pipeline, "frontend", None)
        return getattr(fe, "device_name", "?")

    def _warn_unknown_overrides(self) -> None:
        known = {p.name for p in parameter_table()} | {"use_sim_time", "start_type_description_service"}
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        for name in sorted(set(overrides) - known):
            self.get_logger().warning(f"parameter '{name}' is not a {NODE_NAME} parameter and is ignored")

    def _make_publishers(self) -> None:
        out = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.odom_pub = self.create_publisher(Odometry, "odom", out)
        self.path_pub = self.create_publisher(Path, "path", out)
        self.cloud_pub = self.create_publisher(PointCloud2, "matches", out)
        self.match_image_pub = self.create_publisher(Image, "matches/image", out)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", out)
        self.tf_out = TfOut(self) if self.settings.publish_tf else None
        self.reset_srv = self.create_service(Trigger, "~/reset", self._on_reset)
        # Steady clock: with use_sim_time a paused, missing or jumping /clock must not stop the health reports.
        self.diag_timer = self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics,
                                            clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _make_subscriptions(self) -> None:
        qos = input_qos(self.settings)
        # camera_info first: the executor serves ready subscriptions in creation order, so an info and its image
        # arriving together are stored in that order.
        self.info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos)
        if self.settings.image_transport == "compressed":
            self.create_subscription(CompressedImage, "image/compressed", self._on_image, qos)
        else:
            self.create_subscription(Image, "image", self._on_image, qos)
        self.create_subscription(Image, "mask", self._on_mask, qos)
        if self.settings.use_depth:
            self.create_subscription(Image, "depth", self._on_depth, qos)

    # ---- callbacks: store and return ---------------------------------------------------------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.infos.add(msg)

    def _on_mask(self, msg: Image) -> None:
        self.mask_msg = msg

    def _on_image(self, msg) -> None:
        self.counters.count_received()
        item = FrameInput(msg, received=time.monotonic())
        if not self.settings.use_depth:
            self._offer(item)
            return
        with self.pair_lock:
            pairs, evicted = self.pairer.add_image(conv.stamp_to_sec(msg.header.stamp), item)
        self._after_pairing(pairs, evicted)

    def _on_depth(self, msg: Image) -> None:
        with self.pair_lock:
            pairs, evicted = self.pairer.add_depth(conv.stamp_to_sec(msg.header.stamp), msg)
        self._after_pairing(pairs, evicted)

    def _after_pairing(self, pairs, evicted) -> None:
        for item in evicted:
            self.log_cause(f"{SKIPPED}.no_depth_within_sync_slop", "no depth image within sync_slop "
                           f"({self.settings.sync_slop:g} s) of the image's stamp: frame skipped")
            self._finish(SKIPPED, "no_depth_within_sync_slop", conv.stamp_to_sec(item.image.header.stamp))
        for image, depth in pairs:
            image.depth = depth
            self._offer(image)

    def _offer(self, item: FrameInput) -> None:
        old = self.slot.put(item)
        if old is not None:  # the worker was busy: the newer frame wins
            self.log_cause(f"{SKIPPED}.dropped", "the worker was busy: an older frame was dropped (newest wins)",
                           "info")
            self._finish(SKIPPED, "dropped", conv.stamp_to_sec(old.image.header.stamp))

    def _on_reset(self, request, response):
        # Applied by the worker before its next frame, so the service never waits for a running inference.
        self.reset_requested.set()
        response.success = True
        response.message = "odometry reset requested: tracking restarts at the next frame, the pose continues"
        return response

    # ---- worker ------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self.stopping.is_set():
            item = self.slot.take()
            if item is None:
                continue
            try:
                self._handle(item)
            except Exception as exc:  # noqa: BLE001 - the node must survive anything one frame does
                if self.stopping.is_set():
                    return
                self._finish(FAILED, f"exception {type(exc).__name__}")
                try:
                    self.log_cause(f"{FAILED}.exception {type(exc).__name__}", f"frame failed: {exc}", "error")
                except Exception:  # noqa: BLE001 - not even a failing logger may end the worker
                    pass

    def _handle(self, item: FrameInput) -> None:
        if self.reset_requested.is_set():
            self.reset_requested.clear()
            self._reset("service", "odometry reset (service): tracking restarts, the pose continues")
        try:
            frame = self._convert(item)
        except FrameRejected as rej:
            self.log_cause(f"{rej.outcome}.{rej.reason}", f"frame {rej.outcome}: {rej.text}", rej.level)
            self._finish(rej.outcome, rej.reason, conv.stamp_to_sec(item.image.header.stamp))
            return
        T_base_cam, why = self.extrinsic.get(frame.frame_id)
        if T_base_cam is None:
            self._finish(SKIPPED, why, frame.stamp)
            return
        self._watch_stamp(frame.stamp)
        small = conv.limit_size(frame.image, frame.camera, frame.depth, frame.mask, self.settings.max_image_size)
        out = self._finite(self.pipeline.process(small.image, small.camera, frame.stamp, depth=small.depth,
                                                 mask=small.mask))
        self.counters.add_telemetry(out)
        self._report(out)
        header = item.image.header
        if out.outcome == PROCESSED:
            self._publish(out, small, header, frame.frame_id, T_base_cam)
        else:
            lost = out.odometry is not None and out.odometry.state == LOST
            if lost and self.settings.publish_when_lost:  # keep the stream alive, flagged by the covariance
                self._publish_odometry(out.odometry, header.stamp, T_base_cam)
        self._finish(out.outcome, out.reason, frame.stamp)

    # ---- input checks: each cause its own reason, before anything touches the pipeline's state ---------------
    def _convert(self, item: FrameInput) -> ConvertedFrame:
        """Messages -> arrays; raises FrameRejected with the outcome and reason of a frame that cannot be used."""
        msg = item.image
        stamp = conv.stamp_to_sec(msg.header.stamp)
        image = self._image(msg)
        camera = self._camera_for(stamp, image)
        depth = self._depth(item.depth, image) if item.depth is not None else None
        mask = self._mask(image)
        return ConvertedFrame(image, camera, depth, mask, msg.header.frame_id or self.settings.camera_frame, stamp)

    @staticmethod
    def _image(msg) -> np.ndarray:
        try:
            image = conv.compressed_to_numpy(msg) if isinstance(msg, CompressedImage) else conv.image_to_numpy(msg)
        except conv.ConversionError as exc:
            raise FrameRejected(FAILED, exc.reason, f"image: {exc}") from None
        # Rejected here, not in the pipeline: a garbage frame of another size would reset the reference twice.
        why = check_image(image)
        if why:
            raise FrameRejected(FAILED, reason_key(why), why)
        low, high = int(image.min()), int(image.max())
        if high - low <= (BLANK_RANGE if image.dtype == np.uint8 else BLANK_RANGE * 256):
            # A capped lens, a dead or blinded sensor: nothing to match, and such a frame must not become the
            # reference the next good frames are matched against. The keyframe survives; tracking goes on.
            raise FrameRejected(FAILED, "blank_image", f"every pixel is within {high - low} grey levels "
                                f"({low}..{high}): nothing to track")
        return image

    def _camera_for(self, stamp: float, image: np.ndarray) -> Camera:
        try:
            camera = self.infos.camera_for(stamp)
        except conv.ConversionError as exc:
            raise FrameRejected(FAILED, exc.reason, f"camera_info: {exc}") from None
        if camera is None:
            raise FrameRejected(SKIPPED, "no camera_info", f"no CameraInfo received yet on "
                                f"'{self.info_sub.topic_name}': frames are skipped until one arrives")
        h, w = image.shape[:2]
        if (camera.width, camera.height) != (w, h):
            raise FrameRejected(FAILED, "camera_info_size_mismatch",
                                f"camera_info is {camera.width}x{camera.height}, the image {w}x{h}")
        return camera

    def _depth(self, msg: Image, image: np.ndarray) -> np.ndarray:
        try:
            depth = conv.depth_to_numpy(msg)
        except conv.ConversionError as exc:
            raise FrameRejected(FAILED, f"depth_{exc.reason}", f"depth: {exc}") from None
        if depth.shape != image.shape[:2]:
            # Checked before max_image_size resizing, which would silently stretch it to the image's size.
            raise FrameRejected(FAILED, "depth_size_mismatch", f"depth is {depth.shape[1]}x{depth.shape[0]}, the "
                                f"image {image.shape[1]}x{image.shape[0]} (depth must be registered to the image)")
        if not np.any(np.isfinite(depth) & (depth > 0)):
            # Not fatal: the pose comes from the keyframe's depth; the odometry will not make this frame a keyframe.
            self.counters.event("event", "depth_no_valid_pixels")
            self.log_cause("event.depth_no_valid_pixels", "the depth image has no valid pixel (all zero or NaN): "
                           "the pose comes from the keyframe's depth")
        return depth

    # ---- what happened: stamps, resets, tracking state -------------------------------------------------------
    def _watch_stamp(self, stamp: float) -> None:
        kind, dt = self.stamps.check(stamp)
        self._went_back = dt if kind == "backwards" else 0.0  # the pipeline resets; _report says so
        if kind == "gap":
            self.counters.event("event", "stamp_gap")
            self.log_cause("event.stamp_gap", f"no image for {dt:.1f} s (stamp gap): tracking goes on if the scene "
                           "still matches the reference, else it is lost and re-initialises")

    def _report(self, out: FrameOutcome) -> None:
        """Count resets, log the outcome's cause (throttled) and tracking lost / regained."""
        for cause in PIPELINE_RESETS:
            if out.reason.startswith(cause):
                self.counters.event("reset", cause)
                why = (f"image stamps went back {self._went_back:.3f} s (a bag loop or a restarted driver?)"
                       if self._went_back else out.reason.split(";")[0])
                self.log_cause(f"reset.{cause}", f"{why}: tracking restarts from this frame, the pose continues")
        if out.outcome != PROCESSED:
            level = "info" if out.outcome == SKIPPED else "warning"
            self.log_cause(f"{out.outcome}.{reason_key(out.reason)}", f"frame {out.outcome}: {out.reason}", level)
        state = out.odometry.state if out.odometry is not None else self._state
        if state == LOST and self._state != LOST:
            self.counters.event("event", "tracking_lost")
            where = (f"odom is published with covariance {self.od_cfg.lost_covariance:g} on the diagonal"
                     if self.settings.publish_when_lost else "no odom is published")
            self.log_cause("event.tracking_lost", f"tracking lost ({out.reason}): {where} until it recovers")
        if self._lost_since and state == TRACKING:
            self.counters.event("event", "tracking_regained")
            self.log_cause("event.tracking_regained", f"tracking again, {self._lost_since} frames after it was lost",
                           "info")
            self._lost_since = 0
        elif state == LOST or self._lost_since:
            self._lost_since += 1
        self._state = state

    def _reset(self, cause: str, text: str) -> None:
        self.pipeline.reset(cause)
        self.refs.clear()
        self.counters.event("reset", cause)
        self.log_cause(f"reset.{cause}", text, "info")

    def _finite(self, out: FrameOutcome) -> FrameOutcome:
        """Never publish a non-finite number: such an estimate becomes a failed frame (a core bug, logged)."""
        odo = out.odometry
        if odo is None:
            return out
        values = (odo.pose, odo.covariance, odo.velocity, odo.twist_covariance)
        if all(np.all(np.isfinite(v)) for v in values):
            return out
        self.log_cause(f"{FAILED}.non-finite odometry", f"the odometry returned non-finite values "
                       f"({out.reason!r}): not published", "error")
        return dataclasses.replace(out, outcome=FAILED, reason="non-finite odometry", odometry=None)

    def _mask(self, image: np.ndarray) -> Optional[np.ndarray]:
        """mask_file OR the latest ``mask`` message, each used only when it has the image's size."""
        masks = []
        if self.static_mask is not None:
            masks.append(("mask_file", self.static_mask))
        if self.mask_msg is not None:
            try:
                masks.append(("mask topic", conv.mask_to_numpy(self.mask_msg)))
            except conv.ConversionError as exc:
                self.log_cause(f"mask.{exc.reason}", f"mask topic ignored: {exc}")
        combined = None
        for name, mask in masks:
            if mask.shape != image.shape[:2]:
                self.log_cause(f"mask.size.{name}", f"{name} ignored: {mask.shape[1]}x{mask.shape[0]} != image "
                               f"{image.shape[1]}x{image.shape[0]}")
                continue
            combined = mask if combined is None else combined | mask
        return combined

    def _finish(self, outcome: str, reason: str = "", stamp: Optional[float] = None) -> None:
        self.counters.count(outcome, reason, stamp)

    # ---- publishing ----------------------------------------------------------------------------------------
    def _publish(self, out: FrameOutcome, small: conv.Resized, header: Header, frame_id: str,
                 T_base_cam: np.ndarray) -> None:
        odo, track = out.odometry, out.track
        stamp = header.stamp
        if odo is not None:
            keyframe = bool(odo.keyframe or (track is not None and track.is_first))
            self.refs.remember(out.stamp, small.image, keyframe)
            if odo.state != LOST or self.settings.publish_when_lost:
                self._publish_odometry(odo, stamp, T_base_cam)
        if track is not None and track.ok:
            self._publish_cloud(track, small, Header(stamp=stamp, frame_id=frame_id))
            if self.match_image_pub.get_subscription_count() > 0:  # drawing costs: only for a viewer
                self._publish_match_image(out, small.image, Header(stamp=stamp, frame_id=frame_id))

    def _publish_odometry(self, odo, stamp, T_base_cam: np.ndarray) -> None:
        T = conv.camera_pose_to_base(odo.pose, T_base_cam)
        cov = np.array(odo.covariance, np.float64)
        if odo.state == LOST:  # make sure a consumer never trusts a lost pose, whatever the core did
            floor = self.od_cfg.lost_covariance
            cov = cov + np.diag(np.maximum(0.0, floor - np.diag(cov)))
        pose_cov = conv.pose_covariance_to_base(cov, T_base_cam, T)
        twist, twist_cov = conv.twist_to_base(odo.velocity, odo.twist_covariance, T_base_cam)
        s = self.settings
        self.odom_pub.publish(conv.odometry_msg(T, pose_cov, twist, twist_cov, stamp, s.odom_frame, s.base_frame))
        if self.tf_out is not None and self.tf_out.send is not None:
            self.tf_out.send(conv.transform_stamped(T, stamp, s.odom_frame, s.base_frame))
        if s.path_max_length > 0:
            self.path.append(conv.pose_stamped(T, stamp, s.odom_frame))
            if self.path_pub.get_subscription_count() > 0:
                self.path_pub.publish(Path(header=Header(stamp=stamp, frame_id=s.odom_frame), poses=list(self.path)))

    def _publish_cloud(self, track, small: conv.Resized, header: Header) -> None:
        p0, p1 = track.points0, track.points1
        xyz = None
        if small.depth is not None and small.camera is not None:
            from .geometry import lift_keypoints

            cfg = self.od_cfg
            xyz = lift_keypoints(p1, small.depth, small.camera, cfg.min_depth, cfg.max_depth,
                                 cfg.depth_interpolation).xyz
        p0, p1 = conv.unscale_points(p0, small.scale), conv.unscale_points(p1, small.scale)  # pixels as received
        self.cloud_pub.publish(conv.matches_cloud(p0, p1, track.scores, track.track_ids, header, xyz))

    def _publish_match_image(self, out: FrameOutcome, image: np.ndarray, header: Header) -> None:
        track = out.track
        ref = self.refs.get(track.ref_stamp)
        if ref is None:
            return
        tel = track.telemetry
        inliers = out.odometry.inliers if out.odometry is not None else 0
        text = (f"stop layer {tel.stop_layer}/{tel.n_layers}  matches {track.num_matches}  inliers {inliers}  "
                f"{out.total_ms:.0f} ms")
        canvas = conv.draw_matches(ref, image, track.points0, track.points1, track.scores, text)
        self.match_image_pub.publish(conv.numpy_to_image(canvas, "rgb8", header))
        with self.counters.lock:
            self.counters.matches_images += 1

    # ---- diagnostics -----------------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        dt, self._last_diag = max(1e-6, now - self._last_diag), now
        received, totals, reasons, w = self.counters.snapshot()
        timed, posed = max(1, w["timed"]), max(1, w["with_pose"])
        state = self.counters.state
        values = {
            "received": received, "processed": totals[PROCESSED], "skipped": totals[SKIPPED],
            "failed": totals[FAILED], "dropped": reasons[f"{SKIPPED}.dropped"],
            "input_rate_hz": w["received"] / dt, "processed_rate_hz": w[PROCESSED] / dt,
            "extract_ms": w["extract_ms"] / timed, "match_ms": w["match_ms"] / timed,
            "pose_ms": w["pose_ms"] / timed, "total_ms": w["total_ms"] / timed,
            "stop_layer_mean": w["stop_layer"] / timed, "layers": self.counters.n_layers,
            "pruned_fraction": w["pruned"] / w["keypoints"] if w["keypoints"] else 0.0,
            "matches_mean": w["matches"] / timed, "inliers_mean": w["inliers"] / posed,
            "state": state, "device": self.counters.device or self.pipeline_device(),
            "backend": self.counters.backend, "matches_images": self.counters.matches_images,
            "keyframes": self.counters.keyframes, "last_stamp": _stamp_text(self.counters.last_stamp),
        }
        values.update(sorted(reasons.items()))
        status = DiagnosticStatus(name=f"{NODE_NAME}: visual odometry", hardware_id=str(values["device"]))
        status.level, status.message = self._health(state, w, dt)
        status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    @staticmethod
    def _health(state: str, w, dt: float) -> Tuple[bytes, str]:
        done = w[PROCESSED] + w[SKIPPED] + w[FAILED]
        if w["received"] == 0 and done == 0:
            return DiagnosticStatus.WARN, "no images"
        if done and w[FAILED] == done:
            return DiagnosticStatus.ERROR, f"every frame failed ({w[FAILED]} in {dt:.1f} s)"
        if state == LOST:
            return DiagnosticStatus.WARN, "tracking lost"
        return DiagnosticStatus.OK, f"{state}, {w[PROCESSED] / dt:.1f} frames/s"

    # ---- shutdown --------------------------------------------------------------------------------------------
    def close(self) -> None:
        self.stopping.set()
        self.slot.close()
        self.worker.join(timeout=5.0)


def _stamp_text(t: float) -> str:
    """A stamp with all its nanoseconds (diagnostics values are text)."""
    return f"{t:.9f}" if math.isfinite(t) else "none"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if math.isfinite(v) else str(v)
    return str(v)


def main(argv: Optional[List[str]] = None) -> int:
    """Console script ``matcher_node``: exit 0 on SIGINT/SIGTERM, 2 on invalid parameters, 1 if it cannot start."""
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    code = 0
    try:
        node = MatcherNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterError as exc:
        print(f"[{NODE_NAME}] invalid parameters: {exc}", file=sys.stderr, flush=True)
        code = 2
    except (OSError, ImportError) as exc:  # weights or a module missing: one clear line, no traceback
        if node is not None:
            raise
        print(f"[{NODE_NAME}] cannot start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
