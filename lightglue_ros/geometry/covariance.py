"""Pose covariances: from reprojection residuals, and composed along a chain of poses.

6x6 in ROS order ``x y z roll pitch yaw``: position error of the camera centre and a small rotation about the
axes of the reference frame (``R' = Exp(dphi) R``), both expressed in the reference frame.
"""
from __future__ import annotations

import numpy as np

from lightglue_ros.core.lie import skew, so3_exp
from lightglue_ros.geometry.camera import project


def _perturbed_residuals(X0: np.ndarray, p1: np.ndarray, T_0_1: np.ndarray, K: np.ndarray,
                         delta: np.ndarray) -> np.ndarray:
    # Camera centre moved by delta[:3], orientation rotated by delta[3:] about the reference-frame axes.
    R = so3_exp(delta[3:]) @ T_0_1[:3, :3]
    c = T_0_1[:3, 3] + delta[:3]
    Xc = (X0 - c) @ R  # R^T (X - c) for each row
    return (project(K, Xc) - p1).ravel()


def pose_covariance(X0, pts1, T_0_1: np.ndarray, K: np.ndarray, sigma_floor_px: float = 0.1,
                    step: float = 1e-6) -> tuple[np.ndarray, float]:
    """6x6 covariance (x y z roll pitch yaw, reference frame) of ``T_0_1`` from reprojection residuals.

    Gauss-Newton approximation ``sigma^2 (J^T J)^-1`` with a central-difference Jacobian of the current-image
    reprojection error over the inliers (points ``X0`` held fixed, so it is a lower bound: point uncertainty is
    not propagated). ``sigma^2 = sum r^2 / (2N - 6)``, floored at ``sigma_floor_px`` so exact synthetic data still
    gives a positive-definite matrix. Returns (covariance, sigma_px). More and better-spread inliers shrink it.
    """
    X0 = np.asarray(X0, dtype=np.float64).reshape(-1, 3)
    p1 = np.asarray(pts1, dtype=np.float64).reshape(-1, 2)
    n = len(X0)
    zero = np.zeros(6)
    r0 = _perturbed_residuals(X0, p1, T_0_1, K, zero)
    dof = max(2 * n - 6, 1)
    sigma = float(np.sqrt(np.sum(r0 ** 2) / dof)) if n else float("inf")
    sigma = max(sigma, sigma_floor_px) if np.isfinite(sigma) else 1e3
    J = np.empty((2 * n, 6))
    for k in range(6):
        d = np.zeros(6)
        d[k] = step
        J[:, k] = (_perturbed_residuals(X0, p1, T_0_1, K, d) - _perturbed_residuals(X0, p1, T_0_1, K, -d)) / (2 * step)
    H = J.T @ J
    # A tiny ridge keeps a near-degenerate geometry (few, collinear points) invertible and SPD instead of raising.
    H += np.eye(6) * max(1e-9 * np.trace(H), 1e-12)
    cov = sigma ** 2 * np.linalg.inv(H)
    cov = 0.5 * (cov + cov.T)
    return cov, sigma


def compose_covariance(T_w_kf: np.ndarray, cov_kf: np.ndarray, T_kf_cur: np.ndarray, cov_rel: np.ndarray) -> np.ndarray:
    """First-order covariance of ``T_w_kf @ T_kf_cur`` (x y z roll pitch yaw, world frame).

    The keyframe's orientation error swings the relative translation (lever arm); the relative covariance is
    rotated into the world frame. The two are treated as independent.
    """
    R = T_w_kf[:3, :3]
    lever = R @ T_kf_cur[:3, 3]
    A = np.eye(6)
    A[:3, 3:] = -skew(lever)
    G = np.zeros((6, 6))
    G[:3, :3] = R
    G[3:, 3:] = R
    cov = A @ cov_kf @ A.T + G @ cov_rel @ G.T
    return 0.5 * (cov + cov.T)
