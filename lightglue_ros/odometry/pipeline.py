"""The one glue the ROS node and the offline runner both call: image -> FrontEnd -> VisualOdometry -> FrameOutcome.

`Pipeline.process` never raises for bad input. Every frame ends as exactly one `FrameOutcome`:

- ``skipped``: the frame was not looked at — "no camera_info", "duplicate stamp" (same stamp as the last frame:
  a re-sent message, it would give a zero dt).
- ``processed``: the frame went through tracking and odometry. This includes the frame that seeds the reference
  ("first frame (reference)", state initializing), a static camera ("static (no parallax)", pose held) and
  monocular initialisation ("initialising: waiting for parallax ...").
- ``failed``: with the reason — "bad stamp", "invalid camera: ...", "bad image: ...", "image WxH does not match
  camera_info WxH", the front end's reasons ("too few keypoints ...", "no matches", ...), the odometry's
  ("too few matches", "too few inliers", "depth wrong size ...", "no depth", ...), or "internal error: <Type>: ..."
  for an unexpected exception (caught here, the stream keeps going).

Resets: a frame-size change ("frame size changed") or a stamp older than the last one ("time jumped backwards")
resets front end and odometry before the frame is processed; the frame then seeds the new reference and its reason
starts with the cause. Odometry stays continuous across resets (see `odometry`).

Undistortion: keypoints are detected on the raw image; `VisualOdometry.update` undistorts the matched points only,
with the validated camera, before any geometry. The front end runs with ``auto_promote=False``: the odometry
decides keyframes and this class calls ``frontend.promote()`` / ``frontend.reset()`` accordingly.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from lightglue_ros import geometry as geo
from lightglue_ros.matching.frontend import FrontEnd, FrontEndConfig
from lightglue_ros.odometry.odometry import OdometryConfig, VisualOdometry
from lightglue_ros.core.image import check_image
from lightglue_ros.core.types import FAILED, PROCESSED, SKIPPED, Camera, FrameOutcome


@dataclass
class PipelineConfig:
    """Settings of the whole pipeline: the front end's and the odometry's."""

    frontend: FrontEndConfig = field(default_factory=FrontEndConfig)
    odometry: OdometryConfig = field(default_factory=OdometryConfig)


class Pipeline:
    """``process(image, camera, stamp, depth=None, mask=None) -> FrameOutcome``; ``reset(reason)``."""

    def __init__(self, config: Optional[PipelineConfig] = None, frontend: Optional[FrontEnd] = None):
        self.config = config or PipelineConfig()
        if frontend is None:
            # The odometry chooses keyframes; a front end that promotes every frame would chain drift.
            frontend = FrontEnd(dataclasses.replace(self.config.frontend, auto_promote=False))
        elif getattr(getattr(frontend, "config", None), "auto_promote", False):
            frontend.config.auto_promote = False
        self._frontend = frontend
        self._odometry = VisualOdometry(self.config.odometry)
        self._last_stamp: Optional[float] = None
        self._frame_size: Optional[tuple[int, int]] = None

    # ---- public state ---------------------------------------------------------------------------------------
    @property
    def frontend(self) -> FrontEnd:
        return self._frontend

    @property
    def odometry(self) -> VisualOdometry:
        return self._odometry

    @property
    def state(self) -> str:
        return self._odometry.state

    @property
    def pose(self) -> np.ndarray:
        return self._odometry.pose

    def reset(self, reason: str = "reset") -> None:
        """Drop the reference and keyframe; the pose is kept (odometry never jumps)."""
        self._frontend.reset()
        self._odometry.reset(reason)
        self._last_stamp = None

    # ---- per frame ------------------------------------------------------------------------------------------
    def process(self, image, camera: Optional[Camera], stamp: float, depth=None, mask=None) -> FrameOutcome:
        t0 = time.perf_counter()
        try:
            out = self._process(image, camera, stamp, depth, mask)
        except Exception as exc:  # noqa: BLE001 - the boundary: one bad frame must not stop the stream
            out = FrameOutcome(stamp=_as_float(stamp), outcome=FAILED,
                               reason=f"internal error: {type(exc).__name__}: {exc}")
        out.total_ms = (time.perf_counter() - t0) * 1e3
        return out

    def _process(self, image, camera, stamp, depth, mask) -> FrameOutcome:
        t = _as_float(stamp)
        if not math.isfinite(t):
            return FrameOutcome(stamp=t, outcome=FAILED, reason="bad stamp")
        if camera is None:
            return FrameOutcome(stamp=t, outcome=SKIPPED, reason="no camera_info")
        why = geo.validate_camera(camera)
        if why:
            return FrameOutcome(stamp=t, outcome=FAILED, reason=f"invalid camera: {why}")
        why = check_image(image)
        if why:
            return FrameOutcome(stamp=t, outcome=FAILED, reason=why)
        size = (int(image.shape[1]), int(image.shape[0]))
        if size != (int(camera.width), int(camera.height)):
            return FrameOutcome(stamp=t, outcome=FAILED, reason=(
                f"image {size[0]}x{size[1]} does not match camera_info {camera.width}x{camera.height}"))
        if self._last_stamp is not None and t == self._last_stamp:
            return FrameOutcome(stamp=t, outcome=SKIPPED, reason="duplicate stamp")
        note = self._reset_if_discontinuous(size, t)
        return self._track(image, camera, t, depth, mask, note)

    def _reset_if_discontinuous(self, size: tuple[int, int], stamp: float) -> str:
        """Reset on a new frame size or a stamp going backwards; return the cause ("" when none)."""
        note = ""
        if self._frame_size is not None and size != self._frame_size:
            old = self._frame_size
            note = f"frame size changed ({old[0]}x{old[1]} -> {size[0]}x{size[1]})"
        elif self._last_stamp is not None and stamp < self._last_stamp:
            note = "time jumped backwards"
        if note:
            self.reset(note)
        self._frame_size = size
        self._last_stamp = stamp
        return note

    def _track(self, image, camera: Camera, stamp: float, depth, mask, note: str) -> FrameOutcome:
        track = self._frontend.track(image, mask=mask, stamp=stamp)
        odo = self._odometry.update(track, camera, depth)
        if odo.keyframe and not track.is_first:
            self._frontend.promote()
        if self._odometry.needs_reference:
            # Lost with the "reset" policy (or reset by the odometry): the next frame seeds a new reference.
            self._frontend.reset()
        if self._odometry.failed and (track.ok or track.is_first):
            outcome, reason = FAILED, odo.reason  # e.g. a keyframe refused for want of depth
        elif track.is_first:
            outcome, reason = PROCESSED, track.reason or "first frame (reference)"
        elif not track.ok:
            outcome, reason = FAILED, track.reason or "tracking failed"
        else:
            outcome, reason = PROCESSED, odo.reason
        if note:
            reason = f"{note}; {reason}" if reason else note
        tel = track.telemetry
        return FrameOutcome(stamp=stamp, outcome=outcome, reason=reason, track=track, odometry=odo,
                            extract_ms=float(tel.extract_ms), match_ms=float(tel.match_ms),
                            pose_ms=float(odo.pose_ms))


def _as_float(stamp) -> float:
    try:
        return float(stamp)
    except (TypeError, ValueError):
        return float("nan")
