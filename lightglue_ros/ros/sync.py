"""How the node lines its inputs up.

CameraInfo per image stamp, image + depth pairing, the newest-frame mailbox of the worker, stamp jumps, and the
reference images the matches image needs.

No ROS here beyond message fields: each piece is testable with plain objects (test_node, test_faults).
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Deque, List, Optional, Tuple

import numpy as np

from lightglue_ros.core.types import Camera
from lightglue_ros.io.msg_decode import CameraInfoFields, ConversionError, camera_from_msg, stamp_to_sec


class CameraInfos:
    """Recent CameraInfo messages; the image gets the one with its own stamp when it is here, else the newest.

    A driver stamps image and info alike. Preferring that pair keeps a mode change (new size, new intrinsics)
    consistent even when the next info already arrived. Each message is converted once (the result or the
    error is cached, so a bad info fails every frame it is used for, not only the first).
    """

    def __init__(self, keep: int = 8):
        self._lock = threading.Lock()
        self._msgs: Deque[Any] = collections.deque(maxlen=keep)  # CameraInfo messages (fields + header)
        self._cached: Tuple[Any, Optional[Camera], Optional[ConversionError]] = (None, None, None)

    def add(self, msg: CameraInfoFields) -> None:
        """Keep a CameraInfo (converted when an image first needs it)."""
        with self._lock:
            self._msgs.append(msg)

    def camera_for(self, stamp: float) -> Optional[Camera]:
        """Return the Camera for an image stamp; None before any CameraInfo; raises ConversionError for a bad one."""
        with self._lock:
            msgs = list(self._msgs)
        if not msgs:
            return None
        msg = next((m for m in reversed(msgs) if stamp_to_sec(m.header.stamp) == stamp), msgs[-1])
        if msg is not self._cached[0]:
            try:
                self._cached = (msg, camera_from_msg(msg), None)
            except ConversionError as exc:
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
