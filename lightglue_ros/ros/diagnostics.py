"""What the node tells about itself: outcome counts per reason, throttled cause logging, the /diagnostics status.

Every received image ends in exactly one outcome (processed / skipped / failed, with a reason); `OutcomeCounters`
counts them and the per-period telemetry, `diagnostics_status` turns one period into a DiagnosticStatus, and
`CauseLog` logs each cause under the same key the counts use, so logs and /diagnostics line up.
"""
from __future__ import annotations

import collections
import math
import threading
import time
from typing import Dict, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from lightglue_ros.core.types import FAILED, LOST, PROCESSED, SKIPPED, FrameOutcome, reason_key
from lightglue_ros.ros.params import NODE_NAME

_MAX_REASONS = 64  # distinct reason / event keys kept; later new ones count as "other" (memory stays bounded)


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


def diagnostics_status(counters: OutcomeCounters, dt: float, fallback_device: str) -> DiagnosticStatus:
    """Build the node's DiagnosticStatus for the ``dt`` seconds since the last one (starts a new counting period).

    Values: totals since start (received, processed, skipped, failed, dropped, keyframes, matches_images), means
    over the period (rates, timings, stop layer, matches, inliers), the state, and every ``<outcome>.<reason>``,
    ``reset.<cause>`` and ``event.<name>`` count.
    """
    received, totals, reasons, w = counters.snapshot()
    timed, posed = max(1, w["timed"]), max(1, w["with_pose"])
    state = counters.state
    values = {
        "received": received, "processed": totals[PROCESSED], "skipped": totals[SKIPPED],
        "failed": totals[FAILED], "dropped": reasons[f"{SKIPPED}.dropped"],
        "input_rate_hz": w["received"] / dt, "processed_rate_hz": w[PROCESSED] / dt,
        "extract_ms": w["extract_ms"] / timed, "match_ms": w["match_ms"] / timed,
        "pose_ms": w["pose_ms"] / timed, "total_ms": w["total_ms"] / timed,
        "stop_layer_mean": w["stop_layer"] / timed, "layers": counters.n_layers,
        "pruned_fraction": w["pruned"] / w["keypoints"] if w["keypoints"] else 0.0,
        "matches_mean": w["matches"] / timed, "inliers_mean": w["inliers"] / posed,
        "state": state, "device": counters.device or fallback_device,
        "backend": counters.backend, "matches_images": counters.matches_images,
        "keyframes": counters.keyframes, "last_stamp": _stamp_text(counters.last_stamp),
    }
    values.update(sorted(reasons.items()))
    status = DiagnosticStatus(name=f"{NODE_NAME}: visual odometry", hardware_id=str(values["device"]))
    status.level, status.message = health(state, w, dt)
    status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
    return status


def health(state: str, w, dt: float) -> Tuple[bytes, str]:
    """(level, message) of one period's window ``w``: no images, every frame failed, tracking lost, or OK."""
    done = w[PROCESSED] + w[SKIPPED] + w[FAILED]
    if w["received"] == 0 and done == 0:
        return DiagnosticStatus.WARN, "no images"
    if done and w[FAILED] == done:
        return DiagnosticStatus.ERROR, f"every frame failed ({w[FAILED]} in {dt:.1f} s)"
    if state == LOST:
        return DiagnosticStatus.WARN, "tracking lost"
    return DiagnosticStatus.OK, f"{state}, {w[PROCESSED] / dt:.1f} frames/s"


def _stamp_text(t: float) -> str:
    """Format a stamp with all its nanoseconds (diagnostics values are text)."""
    return f"{t:.9f}" if math.isfinite(t) else "none"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if math.isfinite(v) else str(v)
    return str(v)
