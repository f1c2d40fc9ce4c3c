"""Typed records that flow between the stages of the pipeline.

image -> features -> matches (TrackResult) -> relative pose (OdometryResult) -> FrameOutcome.

Conventions used everywhere:
- images are numpy arrays, HxW (mono) or HxWx3 **RGB** (not BGR), uint8 (uint16 mono is accepted and scaled);
- keypoints are float32 pixel coordinates (x right, y down) of the image as given;
- poses are 4x4 float64 matrices ``T_a_b`` mapping points of frame b into frame a, camera optical convention
  (z forward, x right, y down); the odometry world frame is the first camera frame;
- stamps are float seconds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Optional

import numpy as np


class Outcome(StrEnum):
    """Every frame ends in exactly one of these (a StrEnum: equal to, and printed as, its plain string)."""

    PROCESSED = "processed"
    SKIPPED = "skipped"
    FAILED = "failed"


class TrackingState(StrEnum):
    """Tracking states of the odometry core."""

    INITIALIZING = "initializing"
    TRACKING = "tracking"
    LOST = "lost"


PROCESSED, SKIPPED, FAILED = Outcome.PROCESSED, Outcome.SKIPPED, Outcome.FAILED
OUTCOMES = tuple(Outcome)
INITIALIZING, TRACKING, LOST = TrackingState.INITIALIZING, TrackingState.TRACKING, TrackingState.LOST

#: Distortion models understood by the camera model (ROS CameraInfo names plus the EuRoC/Kalibr aliases).
DISTORTION_MODELS = ("none", "plumb_bob", "rational_polynomial", "radtan", "equidistant", "fisheye")


@dataclass
class Camera:
    """Pinhole camera with optional lens distortion (CameraInfo-style)."""

    width: int
    height: int
    K: np.ndarray  # 3x3 float64
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))  # distortion coefficients
    model: str = "none"  # one of DISTORTION_MODELS

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @classmethod
    def pinhole(cls, width: int, height: int, fx: float, fy: float, cx: float, cy: float) -> "Camera":
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(int(width), int(height), K)


@dataclass
class Frame:
    """One frame of a sequence, as yielded by every dataset reader."""

    stamp: float
    image: Optional[np.ndarray]  # None when the file could not be read (reason in `error`)
    camera: Optional[Camera]
    depth: Optional[np.ndarray] = None  # HxW float32 metres, 0 or NaN = invalid
    gt_pose: Optional[np.ndarray] = None  # 4x4 T_world_cam, when ground truth exists for this stamp
    index: int = 0
    error: str = ""  # non-empty: the reader could not produce this frame, and why
    # HxW bool, synthetic scenes only: pixels that see a moving object (their depth is right, but they are not part
    # of the static world, so depth + poses do not give their correspondences). None: no such knowledge.
    dynamic: Optional[np.ndarray] = None


@dataclass
class Telemetry:
    """What one `FrontEnd.track` call cost and what the matcher did."""

    extract_ms: float = 0.0
    match_ms: float = 0.0
    total_ms: float = 0.0
    stop_layer: int = 0  # layer the matcher stopped after (1-based; 0 = matcher not run / not a LightGlue backend)
    n_layers: int = 0
    pruned0: int = 0  # reference points pruned by adaptive width
    pruned1: int = 0  # current-frame points pruned
    keypoints0: int = 0
    keypoints1: int = 0
    device: str = "cpu"
    backend: str = "lightglue"
    backend_info: str = ""  # backend's own note: for hf the model type, mode and resize ("lightglue streaming, ...")


@dataclass
class TrackResult:
    """Matches of the current frame against the reference frame.

    ``ok`` is False with a ``reason`` whenever no usable matching happened (first frame, bad image, too few
    keypoints, wrong-size mask, ...); arrays are then empty but well-typed. ``track`` never raises for bad input.
    """

    stamp: Optional[float]
    ok: bool
    reason: str
    kpts0: np.ndarray  # (N0,2) float32 reference keypoints, pixels
    kpts1: np.ndarray  # (N1,2) float32 current keypoints, pixels
    matches: np.ndarray  # (M,2) int64 indices into kpts0 / kpts1
    scores: np.ndarray  # (M,) float32 match confidence in [0,1]
    track_ids: np.ndarray  # (M,) int64 persistent id of each match (same id along a track)
    telemetry: Telemetry
    ref_stamp: Optional[float] = None
    is_first: bool = False  # no reference existed: this frame only seeded the reference

    @property
    def points0(self) -> np.ndarray:
        return self.kpts0[self.matches[:, 0]] if len(self.matches) else np.zeros((0, 2), np.float32)

    @property
    def points1(self) -> np.ndarray:
        return self.kpts1[self.matches[:, 1]] if len(self.matches) else np.zeros((0, 2), np.float32)

    @property
    def num_matches(self) -> int:
        return int(len(self.matches))

    @staticmethod
    def empty(stamp, reason: str, telemetry: Optional[Telemetry] = None, is_first: bool = False) -> "TrackResult":
        z2 = np.zeros((0, 2), np.float32)
        return TrackResult(
            stamp=stamp, ok=False, reason=reason, kpts0=z2, kpts1=z2.copy(),
            matches=np.zeros((0, 2), np.int64), scores=np.zeros(0, np.float32),
            track_ids=np.zeros(0, np.int64), telemetry=telemetry or Telemetry(), is_first=is_first,
        )


@dataclass
class OdometryResult:
    """Output of `VisualOdometry.update` for one frame."""

    stamp: float
    state: str  # INITIALIZING | TRACKING | LOST
    reason: str  # why the state is what it is ("" when tracking normally)
    pose: np.ndarray  # 4x4 T_world_cam (world = first camera frame), never jumps
    covariance: np.ndarray  # 6x6 pose covariance, world frame, order x y z roll pitch yaw
    velocity: np.ndarray  # (6,) twist in the camera frame: vx vy vz wx wy wz (m/s, rad/s)
    twist_covariance: np.ndarray  # 6x6
    inliers: int = 0
    keyframe: bool = False  # this frame became the new reference
    metric: bool = False  # translation in metres (RGB-D) or up to a global scale (monocular)
    pose_ms: float = 0.0
    updated: bool = False  # False: pose held from the previous frame (no new estimate)
    # Where the translation length came from: landmarks | ground | depth | pnp | prior ("" when no estimate).
    scale_source: str = ""


@dataclass
class FrameOutcome:
    """The one outcome of one frame through the whole pipeline (what frames.csv and /diagnostics count)."""

    stamp: float
    outcome: str  # PROCESSED | SKIPPED | FAILED
    reason: str = ""
    track: Optional[TrackResult] = None
    odometry: Optional[OdometryResult] = None
    extract_ms: float = 0.0
    match_ms: float = 0.0
    pose_ms: float = 0.0
    total_ms: float = 0.0


def reason_key(reason: str) -> str:
    """Return a bounded counting key for a free-text reason: its first clause, numbers and details removed.

    "image 320x240 does not match camera_info 640x480" -> "image NxN does not match camera_info NxN";
    "invalid camera: focal length ..." -> "invalid camera"; "time jumped backwards; too few matches" -> the cause.
    """
    text = re.sub(r"\([^)]*\)", "", reason)  # details first: "(scale: a prior)" must not split at its ':'
    text = text.split(";")[0].split(":")[0]
    text = re.sub(r"[-+]?\d+(\.\d+)?", "N", text)
    return " ".join(text.split()) or "unknown"
