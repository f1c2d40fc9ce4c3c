"""The robot's frames (REP-103/105): camera optical poses and uncertainties -> the base frame in ``odom``.

Camera optical frame: z forward, x right, y down; base frame: x forward, y left, z up. ``T_base_cam`` is the
camera-to-base extrinsic (the camera is rigidly mounted). ``odom`` is the base frame at the first image, so
``T_odom_base = T_base_cam . T_world_cam . T_base_cam^-1`` with world = the first camera optical frame. 6x6
covariances are in the order x y z roll pitch yaw (pose) / vx vy vz wx wy wz (twist).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from lightglue_ros.core.lie import skew

#: Base (x forward, y left, z up) <- camera optical (z forward, x right, y down), REP-103; zero translation.
OPTICAL_TO_BODY_XYZQ = (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5)


def camera_pose_to_base(T_world_cam: np.ndarray, T_base_cam: np.ndarray) -> np.ndarray:
    """Camera pose in the odometry world (= first camera optical frame) -> base pose in ``odom``.

    T_odom_base = T_base_cam . T_world_cam . T_base_cam^-1 (the camera is rigidly mounted, so base motion is camera
    motion seen through the extrinsic).
    """
    return T_base_cam @ T_world_cam @ np.linalg.inv(T_base_cam)


def pose_covariance_to_base(cov_world: np.ndarray, T_base_cam: np.ndarray, T_odom_base: np.ndarray) -> np.ndarray:
    """6x6 covariance of (position, small rotation about fixed world axes) of the camera -> of the base in odom.

    First order: with the camera's world-frame errors (dt, dtheta), the base's odom-frame errors are
    dtheta_o = R_bc dtheta and dp_o = R_bc dt + [R_ob t_bc]x R_bc dtheta (the lever arm of the mount).
    """
    R_bc, t_bc = T_base_cam[:3, :3], T_base_cam[:3, 3]
    J = np.zeros((6, 6))
    J[:3, :3] = R_bc
    J[:3, 3:] = skew(T_odom_base[:3, :3] @ t_bc) @ R_bc
    J[3:, 3:] = R_bc
    out = J @ np.asarray(cov_world, np.float64) @ J.T
    return 0.5 * (out + out.T)


def twist_to_base(velocity_cam: np.ndarray, twist_cov_cam: np.ndarray,
                  T_base_cam: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Body twist of the camera (vx vy vz wx wy wz, camera frame) -> body twist of the base (base frame).

    Rigid mount: w_b = R_bc w_c, v_b = R_bc v_c + t_bc x w_b (the adjoint of T_base_cam); the covariance goes
    through the same matrix.
    """
    R_bc, t_bc = T_base_cam[:3, :3], T_base_cam[:3, 3]
    Ad = np.zeros((6, 6))
    Ad[:3, :3] = R_bc
    Ad[:3, 3:] = skew(t_bc) @ R_bc
    Ad[3:, 3:] = R_bc
    cov = Ad @ np.asarray(twist_cov_cam, np.float64) @ Ad.T
    return Ad @ np.asarray(velocity_cam, np.float64), 0.5 * (cov + cov.T)
