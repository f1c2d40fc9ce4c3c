"""The node's TF: the camera-to-base extrinsic it reads and the odom -> base transform it sends.

tf2_ros is optional (it is not on PyPI): without it the extrinsic comes from the ``camera_to_base`` parameter
and the odom -> base TF goes out as a tf2_msgs/TFMessage on /tf, or not at all.
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Tuple

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.time import Time

from lightglue_ros.ros.msgs import transform_to_matrix
from lightglue_ros.ros.params import NodeSettings


class Extrinsic:
    """T_base_cam: identity when base_frame is the camera frame, else TF (tf2_ros) or the parameter.

    Latched once known: a camera mount does not move, and a changing extrinsic would make odometry jump.
    """

    def __init__(self, node: Node, settings: NodeSettings):
        self.node, self.settings = node, settings
        self.T: Optional[np.ndarray] = None
        self.buffer = None
        self.first_try: Optional[float] = None
        try:
            import tf2_ros

            self.buffer = tf2_ros.Buffer()
            self.listener = tf2_ros.TransformListener(self.buffer, node)
        except ImportError:
            pass

    def get(self, camera_frame: str) -> Tuple[Optional[np.ndarray], str]:
        """(T_base_cam, "") or (None, reason to skip the frame for now)."""
        if self.T is not None:
            return self.T, ""
        if camera_frame == self.settings.base_frame:
            self.T = np.eye(4)
        elif self.buffer is None:
            self.T = self.settings.camera_to_base
        else:
            self.T = self._from_tf(camera_frame)
            if self.T is None:
                return None, "waiting_for_extrinsic_tf"
        return self.T, ""

    def _from_tf(self, camera_frame: str) -> Optional[np.ndarray]:
        now = time.monotonic()
        self.first_try = self.first_try or now
        try:
            tf = self.buffer.lookup_transform(self.settings.base_frame, camera_frame, Time())
            return transform_to_matrix(tf.transform)
        except Exception as exc:  # noqa: BLE001 - tf2 raises several lookup exception types
            if now - self.first_try < self.settings.tf_timeout:
                return None
            self.node.get_logger().warning(
                f"no TF {self.settings.base_frame} <- {camera_frame} after {self.settings.tf_timeout:.1f} s "
                f"({exc}); using parameter camera_to_base")
            return self.settings.camera_to_base


class TfOut:
    """odom -> base TF: tf2_ros broadcaster, else a tf2_msgs/TFMessage on /tf, else nothing (logged once)."""

    def __init__(self, node: Node):
        self.send: Optional[Callable] = None
        try:
            import tf2_ros

            broadcaster = tf2_ros.TransformBroadcaster(node)
            self.send = broadcaster.sendTransform
            return
        except ImportError:
            pass
        try:
            from tf2_msgs.msg import TFMessage

            pub = node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))
            self.send = lambda tf: pub.publish(TFMessage(transforms=[tf]))
        except ImportError:
            node.get_logger().info("tf2_ros and tf2_msgs are not installed: the odom -> base TF is not published")
