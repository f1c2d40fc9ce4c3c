"""Rotations and rigid transforms: one home for SE(3)/SO(3) helpers (no ROS, numpy only).

``T_a_b`` (4x4 float64) maps points of frame b into frame a.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def make_T(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """4x4 transform from a rotation and a translation."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.ravel(t)
    return T


def invert_T(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform (``T_b_a`` from ``T_a_b``)."""
    R, t = T[:3, :3], T[:3, 3]
    return make_T(R.T, -R.T @ t)


def transform(T: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Apply ``T`` to (N,3) points."""
    return X @ T[:3, :3].T + T[:3, 3]


def skew(v: np.ndarray) -> np.ndarray:
    """[v]x: the cross-product matrix of v, so that [a]x @ b == np.cross(a, b)."""
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], np.float64)


def so3_exp(phi: np.ndarray) -> np.ndarray:
    """Rotation matrix of the rotation vector ``phi`` (Rodrigues)."""
    theta = float(np.linalg.norm(phi))
    if theta < 1e-12:
        return np.eye(3)
    k = phi / theta
    Kx = skew(k)
    return np.eye(3) + np.sin(theta) * Kx + (1 - np.cos(theta)) * Kx @ Kx


def so3_log(R: np.ndarray) -> np.ndarray:
    """Rotation vector of the rotation matrix ``R`` (inverse of `so3_exp`, angle in [0, pi])."""
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if theta < 1e-9:
        return 0.5 * w
    if np.sin(theta) > 1e-6:
        return theta / (2.0 * np.sin(theta)) * w
    # Near pi the antisymmetric part vanishes: the axis is the dominant column of R + I.
    B = (R + np.eye(3)) / 2.0
    axis = B[:, int(np.argmax(np.diag(B)))]
    return theta * axis / np.linalg.norm(axis)


def rot_x(a: float) -> np.ndarray:
    """Rotation by `a` radians about the x axis."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    """Rotation by `a` radians about the y axis (yaw in the optical frame: y points down)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a: float) -> np.ndarray:
    """Rotation by `a` radians about the z axis (roll about the optical axis)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of the rotation ``R`` in degrees."""
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0))))


def quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion (x, y, z, w), w >= 0 (the ROS order)."""
    R = np.asarray(R, np.float64)
    # Largest-diagonal branch (Shepperd) keeps the square root well away from zero.
    t = np.trace(R)
    if t > 0:
        s = 2.0 * math.sqrt(1.0 + t)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1e-300, 1.0 + R[i, i] - R[j, j] - R[k, k]))
        q = [0.0, 0.0, 0.0, (R[k, j] - R[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (R[j, i] + R[i, j]) / s
        q[k] = (R[k, i] + R[i, k]) / s
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def matrix_from_quat(q: Sequence[float]) -> np.ndarray:
    """Quaternion (x, y, z, w), any norm > 0 -> 3x3 rotation."""
    x, y, z, w = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def transform_from_xyzq(values: Sequence[float]) -> np.ndarray:
    """[x y z qx qy qz qw] -> 4x4 (the layout of a static TF and of the node's ``camera_to_base`` parameter)."""
    if len(values) != 7:
        raise ValueError(f"expected 7 values x y z qx qy qz qw, got {len(values)}")
    q = np.asarray(values[3:], np.float64)
    if not np.all(np.isfinite(values)) or np.linalg.norm(q) < 1e-9:
        raise ValueError(f"not a valid transform: {list(values)}")
    return make_T(matrix_from_quat(q), values[:3])
