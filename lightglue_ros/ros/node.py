"""ROS 2 node ``lightglue_matcher``: camera in, odometry / TF / path / matches / diagnostics out.

A thin adapter around `odometry.pipeline.Pipeline`: it decodes messages (`io.msg_decode`), hands the newest frame
to one worker thread, and publishes what the pipeline returns (`ros.msgs`). No vision or geometry is decided here.
Its helpers: `ros.sync` (CameraInfo per stamp, image + depth pairing, the worker's mailbox), `ros.diagnostics`
(outcome counts, cause log, /diagnostics), `ros.tf` (extrinsic in, odom -> base out), `ros.params`.

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
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Deque, List, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from lightglue_ros.core.image import check_image
from lightglue_ros.core.types import FAILED, LOST, PROCESSED, SKIPPED, TRACKING, Camera, FrameOutcome, reason_key
from lightglue_ros.eval.viz import draw_matches
from lightglue_ros.geometry.frames import camera_pose_to_base, pose_covariance_to_base, twist_to_base
from lightglue_ros.geometry.resize import Resized, limit_size, unscale_points
from lightglue_ros.geometry.rgbd import lift_keypoints
from lightglue_ros.io.msg_decode import (ConversionError, compressed_to_numpy, depth_to_numpy, image_to_numpy,
                                         mask_to_numpy, stamp_to_sec)
from lightglue_ros.odometry.pipeline import Pipeline, PipelineConfig
from lightglue_ros.ros.diagnostics import CauseLog, OutcomeCounters, diagnostics_status
from lightglue_ros.ros.msgs import matches_cloud, numpy_to_image, odometry_msg, pose_stamped, transform_stamped
from lightglue_ros.ros.params import (NODE_NAME, NodeSettings, ParameterError, build_configs, declare_all,
                                      load_mask_file, parameter_table)
from lightglue_ros.ros.sync import CameraInfos, NewestSlot, ReferenceImages, StampPairer, StampWatch
from lightglue_ros.ros.tf import Extrinsic, TfOut


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


#: An image whose pixels all lie within this many grey levels (8-bit; x256 for 16-bit) is blank: black, white.
BLANK_RANGE = 2

#: The pipeline resets itself before a frame for these causes, and the frame's reason then starts with the cause
#: (pipeline.py); the node counts them as ``reset.<cause>`` and says so in the log.
PIPELINE_RESETS = ("frame size changed", "time jumped backwards")


# ------------------------------------------------------------------------------------------------ the node


def input_qos(settings: NodeSettings) -> QoSProfile:
    """Return the QoS of the input subscriptions (camera_info, image, depth, mask) for the ``qos`` parameter.

    ``sensor_data``: the best-effort, volatile sensor-data profile, keeping the last ``queue_size`` messages;
    otherwise reliable, depth ``queue_size``.
    """
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
        # The worker thread builds the pipeline (the weights load there: the slow part of start-up) and is the only
        # thread that ever runs torch. Once another thread has run a parallel torch op, the worker's inference is
        # 1.6x slower (measured on 2 cores, xfeat at 640x480: 65 -> 109 ms per frame; a 512x512 matmul in the
        # main thread is enough), which made a 10 Hz camera drop a fifth of its frames.
        self.stopping = threading.Event()
        self._started = threading.Event()  # set once __init__ has set up the rest (or failed: then `stopping` too)
        self._built = threading.Event()
        self._build_error: Optional[BaseException] = None
        self.pipeline: Optional[Pipeline] = None
        self.worker = threading.Thread(target=self._work, args=(PipelineConfig(frontend=fe_cfg, odometry=od_cfg),),
                                       name="lightglue_worker", daemon=True)
        self.worker.start()
        self._built.wait()
        if self._build_error is not None:
            if isinstance(self._build_error, ValueError):  # FrontEndError and config checks of the core
                raise ParameterError(str(self._build_error)) from self._build_error
            raise self._build_error
        try:
            self._set_up(fe_cfg, od_cfg)
        except BaseException:
            self.stopping.set()  # the worker, waiting for _started, then ends instead of idling on
            raise
        finally:
            self._started.set()
        self.get_logger().info(
            f"ready: backend {fe_cfg.backend}, device {self.pipeline_device()}, "
            f"{'RGB-D' if self.settings.use_depth else 'monocular'}, input QoS {self.settings.qos}, "
            f"transport {self.settings.image_transport}")

    # ---- set-up ------------------------------------------------------------------------------------------
    def _set_up(self, fe_cfg, od_cfg) -> None:
        """Set up everything but the pipeline: state, publishers, subscriptions (the worker takes frames after)."""
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
        self.extrinsic = Extrinsic(self, self.settings)
        self._last_diag = time.monotonic()
        self._make_publishers()
        self._make_subscriptions()

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
            pairs, evicted = self.pairer.add_image(stamp_to_sec(msg.header.stamp), item)
        self._after_pairing(pairs, evicted)

    def _on_depth(self, msg: Image) -> None:
        with self.pair_lock:
            pairs, evicted = self.pairer.add_depth(stamp_to_sec(msg.header.stamp), msg)
        self._after_pairing(pairs, evicted)

    def _after_pairing(self, pairs, evicted) -> None:
        for item in evicted:
            self.log_cause(f"{SKIPPED}.no_depth_within_sync_slop", "no depth image within sync_slop "
                           f"({self.settings.sync_slop:g} s) of the image's stamp: frame skipped")
            self._finish(SKIPPED, "no_depth_within_sync_slop", stamp_to_sec(item.image.header.stamp))
        for image, depth in pairs:
            image.depth = depth
            self._offer(image)

    def _offer(self, item: FrameInput) -> None:
        old = self.slot.put(item)
        if old is not None:  # the worker was busy: the newer frame wins
            self.log_cause(f"{SKIPPED}.dropped", "the worker was busy: an older frame was dropped (newest wins)",
                           "info")
            self._finish(SKIPPED, "dropped", stamp_to_sec(old.image.header.stamp))

    def _on_reset(self, request, response):
        # Applied by the worker before its next frame, so the service never waits for a running inference.
        self.reset_requested.set()
        response.success = True
        response.message = "odometry reset requested: tracking restarts at the next frame, the pose continues"
        return response

    # ---- worker ------------------------------------------------------------------------------------------
    def _work(self, config: PipelineConfig) -> None:
        try:
            self.pipeline = Pipeline(config)
        except BaseException as exc:  # noqa: BLE001 - handed to __init__, which raises it in the main thread
            self._build_error = exc
            return
        finally:
            self._built.set()
        self._started.wait()  # __init__ has set up the rest, or failed and set `stopping`
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
            self._finish(rej.outcome, rej.reason, stamp_to_sec(item.image.header.stamp))
            return
        T_base_cam, why = self.extrinsic.get(frame.frame_id)
        if T_base_cam is None:
            self._finish(SKIPPED, why, frame.stamp)
            return
        self._watch_stamp(frame.stamp)
        small = limit_size(frame.image, frame.camera, frame.depth, frame.mask, self.settings.max_image_size)
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
        stamp = stamp_to_sec(msg.header.stamp)
        image = self._image(msg)
        camera = self._camera_for(stamp, image)
        depth = self._depth(item.depth, image) if item.depth is not None else None
        mask = self._mask(image)
        return ConvertedFrame(image, camera, depth, mask, msg.header.frame_id or self.settings.camera_frame, stamp)

    @staticmethod
    def _image(msg) -> np.ndarray:
        try:
            image = compressed_to_numpy(msg) if isinstance(msg, CompressedImage) else image_to_numpy(msg)
        except ConversionError as exc:
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
        except ConversionError as exc:
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
            depth = depth_to_numpy(msg)
        except ConversionError as exc:
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
                masks.append(("mask topic", mask_to_numpy(self.mask_msg)))
            except ConversionError as exc:
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
    def _publish(self, out: FrameOutcome, small: Resized, header: Header, frame_id: str,
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
        T = camera_pose_to_base(odo.pose, T_base_cam)
        cov = np.array(odo.covariance, np.float64)
        if odo.state == LOST:  # make sure a consumer never trusts a lost pose, whatever the core did
            floor = self.od_cfg.lost_covariance
            cov = cov + np.diag(np.maximum(0.0, floor - np.diag(cov)))
        pose_cov = pose_covariance_to_base(cov, T_base_cam, T)
        twist, twist_cov = twist_to_base(odo.velocity, odo.twist_covariance, T_base_cam)
        s = self.settings
        self.odom_pub.publish(odometry_msg(T, pose_cov, twist, twist_cov, stamp, s.odom_frame, s.base_frame))
        if self.tf_out is not None and self.tf_out.send is not None:
            self.tf_out.send(transform_stamped(T, stamp, s.odom_frame, s.base_frame))
        if s.path_max_length > 0:
            self.path.append(pose_stamped(T, stamp, s.odom_frame))
            if self.path_pub.get_subscription_count() > 0:
                self.path_pub.publish(Path(header=Header(stamp=stamp, frame_id=s.odom_frame), poses=list(self.path)))

    def _publish_cloud(self, track, small: Resized, header: Header) -> None:
        p0, p1 = track.points0, track.points1
        xyz = None
        if small.depth is not None and small.camera is not None:
            cfg = self.od_cfg
            xyz = lift_keypoints(p1, small.depth, small.camera, cfg.min_depth, cfg.max_depth,
                                 cfg.depth_interpolation).xyz
        p0, p1 = unscale_points(p0, small.scale), unscale_points(p1, small.scale)  # pixels as received
        self.cloud_pub.publish(matches_cloud(p0, p1, track.scores, track.track_ids, header, xyz))

    def _publish_match_image(self, out: FrameOutcome, image: np.ndarray, header: Header) -> None:
        track = out.track
        ref = self.refs.get(track.ref_stamp)
        if ref is None:
            return
        tel = track.telemetry
        inliers = out.odometry.inliers if out.odometry is not None else 0
        text = (f"stop layer {tel.stop_layer}/{tel.n_layers}  matches {track.num_matches}  inliers {inliers}  "
                f"{out.total_ms:.0f} ms")
        canvas = draw_matches(ref, image, track.points0, track.points1, track.scores, text)
        self.match_image_pub.publish(numpy_to_image(canvas, "rgb8", header))
        with self.counters.lock:
            self.counters.matches_images += 1

    # ---- diagnostics -----------------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        dt, self._last_diag = max(1e-6, now - self._last_diag), now
        array = DiagnosticArray(status=[diagnostics_status(self.counters, dt, self.pipeline_device())])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    # ---- shutdown --------------------------------------------------------------------------------------------
    def close(self) -> None:
        self.stopping.set()
        self.slot.close()
        self.worker.join(timeout=5.0)


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
