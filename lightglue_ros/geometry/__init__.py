"""Geometry of the pipeline: camera models, two-view pose, RGB-D lifting + PnP, pose covariances.

The stage's public names, by module (import them from here or from the module itself):
``camera`` (undistortion, rays, projection, validation), ``two_view`` (PoseLib relative pose, triangulation),
``rgbd`` (depth lifting, metric P3P pose), ``covariance`` (pose covariances, composition along a chain).
Rigid-transform helpers (``make_T``, ``invert_T``, ``skew``, SO(3) exp/log) live in `lightglue_ros.core.lie`.
"""
from lightglue_ros.geometry.camera import (bearings, camera_from_info, has_distortion, poselib_camera, project,
                                           undistort_points, validate_camera)
from lightglue_ros.geometry.covariance import compose_covariance, pose_covariance
from lightglue_ros.geometry.two_view import (REASON_FEW_INLIERS, REASON_FEW_MATCHES, REASON_NAN, REASON_NO_PARALLAX,
                                             REASON_NO_POSE, REASON_ROTATION, PoseConfig, RelativePose, fit_rotation,
                                             relative_pose, rotation_compensated_flow, rotation_estimate, sampson_px,
                                             triangulate, two_view_config)
from lightglue_ros.geometry.rgbd import (REASON_DEPTH_SIZE, REASON_DEPTH_TYPE, REASON_FEW_DEPTH, LiftedPoints,
                                         check_depth, depth_in_metres, lift_keypoints, metric_pose)

__all__ = [
    "bearings", "camera_from_info", "has_distortion", "poselib_camera", "project", "undistort_points",
    "validate_camera", "compose_covariance", "pose_covariance", "REASON_FEW_INLIERS", "REASON_FEW_MATCHES",
    "REASON_NAN", "REASON_NO_PARALLAX", "REASON_NO_POSE", "REASON_ROTATION", "PoseConfig", "RelativePose",
    "fit_rotation", "relative_pose", "rotation_compensated_flow", "rotation_estimate", "sampson_px", "triangulate",
    "two_view_config",
    "REASON_DEPTH_SIZE", "REASON_DEPTH_TYPE", "REASON_FEW_DEPTH", "LiftedPoints", "check_depth", "depth_in_metres",
    "lift_keypoints", "metric_pose",
]
