"""The sliding window of monocular keyframes that the bundle adjustment refines (see `odometry.bundle`).

Each keyframe keeps its pose and what it observed: the track ids and undistorted pixels of the matches it was
promoted with, plus the same tracks' pixels in the previous keyframe (the front end's persistent ids tie them).
Points are kept by track id in the world frame, as the latest keyframe's map put them. ``adjust`` builds a
`BundleWindow` from the points seen by at least two keyframes of the window, solves it with the oldest keyframe
fixed (position, orientation and the first baseline: the gauge), and writes the refined poses and points back.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from lightglue_ros.core.lie import invert_T, transform


@dataclass
class WindowKeyframe:
    """One keyframe of the window: its pose and its observations (track id -> undistorted pixel)."""

    pose: np.ndarray  # T_world_kf
    cov: np.ndarray  # 6x6 world covariance of the pose
    obs: dict = field(default_factory=dict)  # track id -> (2,) pixel


class KeyframeWindow:
    """The last ``size`` keyframes, their observations and the points by track id (world frame)."""

    def __init__(self, size: int, max_points: int = 0):
        self.size = size
        self.max_points = max_points  # 0: every point seen twice enters the adjustment
        self.keyframes: deque = deque(maxlen=max(size, 1))
        self.points: dict = {}

    def clear(self) -> None:
        """Forget everything (a reset: the next keyframe starts a new window)."""
        self.keyframes.clear()
        self.points.clear()

    def add(self, T_w_kf: np.ndarray, cov: np.ndarray, ids: np.ndarray, p_prev: np.ndarray, p_cur: np.ndarray,
            map_ids: np.ndarray, map_xyz_kf: np.ndarray) -> None:
        """Add a new keyframe: ``ids`` matched at ``p_prev`` in the previous keyframe and ``p_cur`` in this one.

        ``map_ids``/``map_xyz_kf``: the new keyframe's landmarks (its own frame), the points' initial guesses.
        """
        if self.keyframes:
            prev = self.keyframes[-1].obs
            for i, uv in zip(ids.tolist(), p_prev):
                prev.setdefault(i, uv)
        self.keyframes.append(WindowKeyframe(T_w_kf.copy(), cov.copy(), {i: uv for i, uv in zip(ids.tolist(), p_cur)}))
        world = transform(T_w_kf, map_xyz_kf)
        for i, X in zip(map_ids.tolist(), world):
            self.points[i] = X
        alive = set().union(*(kf.obs.keys() for kf in self.keyframes))
        self.points = {i: X for i, X in self.points.items() if i in alive}

    def rescale(self, r: float) -> None:
        """Scale the window (poses and points) by ``r`` about the newest keyframe's centre.

        camera_height corrects the scale of the whole window, so the next adjustment's gauge (the oldest baseline)
        carries the corrected scale instead of pulling the map back to the old one; the newest keyframe, the
        pose the odometry goes on from, stays where it is.
        """
        c = self.keyframes[-1].pose[:3, 3].copy()
        for kf in self.keyframes:
            kf.pose = kf.pose.copy()
            kf.pose[:3, 3] = c + r * (kf.pose[:3, 3] - c)
        for i in self.points:
            self.points[i] = c + r * (self.points[i] - c)

    def build(self, K: np.ndarray, image_size: tuple[int, int]):
        """(BundleWindow, point ids) of the points seen by >= 2 keyframes, or (None, reason).

        With ``max_points`` set, at most that many of them, spread over the image (`_spread`).
        """
        from lightglue_ros.odometry.bundle import BundleWindow

        if len(self.keyframes) < 3:
            return None, "fewer than 3 keyframes in the window"
        count: dict = {}
        last: dict = {}
        for kf in self.keyframes:
            for i, p in kf.obs.items():
                if i in self.points:
                    count[i] = count.get(i, 0) + 1
                    last[i] = p
        ids = np.array(sorted(i for i, c in count.items() if c >= 2), np.int64)
        if len(ids) == 0:
            return None, "no point seen by two keyframes"
        if 0 < self.max_points < len(ids):
            ids = _spread(ids, np.array([count[i] for i in ids.tolist()]), np.array([last[i] for i in ids.tolist()]),
                          image_size, self.max_points)
        index = {i: k for k, i in enumerate(ids.tolist())}
        kf_idx, pt_idx, uv = [], [], []
        for k, kf in enumerate(self.keyframes):
            for i, p in kf.obs.items():
                j = index.get(i)
                if j is not None:
                    kf_idx.append(k)
                    pt_idx.append(j)
                    uv.append(p)
        window = BundleWindow(K=np.asarray(K, np.float64), poses=np.stack([kf.pose for kf in self.keyframes]),
                              points=np.stack([self.points[i] for i in ids.tolist()]),
                              obs_keyframe=np.asarray(kf_idx, np.int64), obs_point=np.asarray(pt_idx, np.int64),
                              obs_uv=np.asarray(uv, np.float64))
        return window, ids

    def adjust(self, K: np.ndarray, image_size: tuple[int, int], config=None):
        """Solve the window; on success write poses and points back. Returns (BundleResult or None, reason).

        ``image_size``: (width, height) of the undistorted pixels, for the spread of a capped window's points.
        """
        from lightglue_ros.odometry.bundle import adjust

        window, ids = self.build(K, image_size)
        if window is None:
            return None, ids
        res = adjust(window, config)
        if not res.ok:
            return res, res.reason
        for kf, T in zip(self.keyframes, res.poses):
            kf.pose = T.copy()
        for i, X, used in zip(ids.tolist(), res.points, res.point_used):
            if used:
                self.points[i] = X
        return res, ""

    def newest_map(self, ids: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(mask, xyz in the newest keyframe's frame) of ``ids`` that have a refined point."""
        T_kf_w = invert_T(self.keyframes[-1].pose)
        have = np.array([i in self.points for i in ids.tolist()], bool)
        if not have.any():
            return have, None
        X = np.stack([self.points[i] for i in ids[have].tolist()])
        return have, transform(T_kf_w, X)


# Cells of the grid over which a capped window's points are spread (columns, rows): ~80x60 px cells at 640x480.
SPREAD_GRID = (8, 6)


def _spread(ids: np.ndarray, count: np.ndarray, uv: np.ndarray, image_size: tuple[int, int], n: int) -> np.ndarray:
    """Pick the ``n`` of ``ids`` that the adjustment keeps: spread over the image, the most observed first; sorted.

    The adjustment's cost (building, solving, the covariance) grows with its points while its poses settle with a
    few hundred, so a cap trades little accuracy for time; but which points stay matters. Points far from each
    other in the image constrain rotation and translation in different directions, and a point seen by more
    keyframes ties more poses together. So the points are binned by their newest pixel (``uv``) on
    `SPREAD_GRID`, ranked within each cell by ``count`` (keyframes that see them), and taken rank by rank: every
    cell's best point, then every cell's second, and so on (ties go to the points seen most).
    """
    grid = np.array(SPREAD_GRID)
    cell_xy = np.clip((uv / np.maximum(np.asarray(image_size, np.float64), 1.0) * grid).astype(np.int64), 0, grid - 1)
    cell = cell_xy[:, 0] * grid[1] + cell_xy[:, 1]
    order = np.lexsort((-count, cell))  # by cell, the most observed first within it
    starts = np.flatnonzero(np.r_[True, np.diff(cell[order]) != 0])
    rank = np.empty(len(ids), np.int64)
    rank[order] = np.arange(len(ids)) - np.repeat(starts, np.diff(np.r_[starts, len(ids)]))
    return np.sort(ids[np.lexsort((-count, rank))[:n]])
