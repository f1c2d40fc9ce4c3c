"""The node tests' helpers: the harness of `lightglue_ros.tools.harness` plus what only tests need.

From the harness (one player / launcher for the demo, the long-run benchmark and these tests): `domain_id_for`,
`ros_env`, `start_matcher` -> `NodeProcess`, `RosSide`, `Player`, `Collector`, `play`, `poses_from_odom`,
`wait_for` (= `harness.wait_until`), `STAMP0`. Here:

- `Stepper`: finer lock-step for fault cases: publish anything, wait until /diagnostics counts its outcomes, read
  the state after that frame.
- `nonfinite`: every non-finite float the node published (odom, path, matches, diagnostics).
- `synthetic_frames`, `ate_sim3`, `path_length`: data and accuracy helpers.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from lightglue_ros.core.types import Frame
from lightglue_ros.io.msg_decode import stamp_to_sec
from lightglue_ros.ros.msgs import cloud_to_numpy
from lightglue_ros.tools.harness import (NODE_NAME, STAMP0, Collector, NodeProcess, Player, RosSide,  # noqa: F401
                                         domain_id_for, number, play, poses_from_odom, ros_env, start_matcher)
from lightglue_ros.tools.harness import wait_until as wait_for

REPO = Path(__file__).resolve().parents[1]


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
                raise TimeoutError(f"no outcome after {self.timeout} s; "
                                   f"diagnostics {self.collector.diagnostics_values()}")
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
        pts = cloud_to_numpy(msg)
        for name in pts.dtype.names:
            if name not in ("x", "y", "z") and pts.dtype[name].kind == "f" and not np.all(np.isfinite(pts[name])):
                bad.append(f"matches.{name} at {stamp_to_sec(msg.header.stamp)}")
    for array in diags:
        for status in array.status:
            for kv in status.values:
                value = number(kv.value)
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
