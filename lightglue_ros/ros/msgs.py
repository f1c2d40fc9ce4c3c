"""ROS messages the node builds and reads: images, CameraInfo, odometry, TF, poses and the match cloud.

Plain functions on message objects (nothing here spins a node). Decoding what arrives (images, depth, masks,
CameraInfo) is `lightglue_ros.io.msg_decode`'s, shared with the bag reader; the frame maths is in
`lightglue_ros.geometry.frames` and `lightglue_ros.core.lie`.

Conventions (REP-103/105): camera optical frame z forward, x right, y down; poses ``T_a_b`` map points of b into
a; ``nav_msgs/Odometry`` pose is in ``header.frame_id`` (odom), twist in ``child_frame_id`` (base_link);
6x6 covariances are row-major in the order x y z roll pitch yaw (pose) / vx vy vz wx wy wz (twist).
"""
from __future__ import annotations

import array
from typing import Optional

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TransformStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from lightglue_ros.core.lie import quat_from_matrix, transform_from_xyzq
from lightglue_ros.core.types import Camera
from lightglue_ros.io.msg_decode import ENCODINGS, ConversionError, ConversionReason


# --------------------------------------------------------------------------------------------------- images
def _bytes(data) -> array.array:
    """uint8[] field value without the per-element type check rclpy's setter runs on lists and bytes."""
    return array.array("B", data if isinstance(data, (bytes, bytearray)) else bytes(data))


def numpy_to_image(pixels: np.ndarray, encoding: str = "rgb8", header: Optional[Header] = None) -> Image:
    """Convert an HxW / HxWx3 RGB array -> Image in ``encoding`` (reorders RGB into bgr/rgba/bgra as asked)."""
    enc = ENCODINGS.get(encoding)
    if enc is None:
        raise ConversionError(ConversionReason.UNKNOWN_ENCODING, repr(encoding))
    data = np.asarray(pixels)
    if enc.channels > 1:
        if data.ndim != 3 or data.shape[2] != 3:
            raise ConversionError(ConversionReason.BAD_SHAPE, f"{data.shape} for {encoding}")
        if enc.order == "bgr":
            data = data[..., ::-1]
        elif enc.order in ("rgba", "bgra"):
            rgb = data[..., ::-1] if enc.order == "bgra" else data
            data = np.concatenate([rgb, np.full(data.shape[:2] + (1,), 255, data.dtype)], axis=2)
    elif data.ndim != 2:
        raise ConversionError(ConversionReason.BAD_SHAPE, f"{data.shape} for {encoding}")
    data = np.ascontiguousarray(data.astype(np.dtype(enc.dtype).newbyteorder("<"), copy=False))
    msg = Image(header=header or Header(), height=int(data.shape[0]), width=int(data.shape[1]),
                encoding=encoding, is_bigendian=0, step=int(data.strides[0]))
    msg.data = _bytes(data.tobytes())
    return msg


def numpy_to_compressed(pixels: np.ndarray, fmt: str = "jpeg", header: Optional[Header] = None) -> CompressedImage:
    """RGB / mono array -> CompressedImage (the players of tests and demo use it)."""
    bgr = pixels[..., ::-1] if pixels.ndim == 3 else pixels
    ok, enc = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", np.ascontiguousarray(bgr))
    if not ok:
        raise ConversionError(ConversionReason.ENCODE_FAILED, fmt)
    msg = CompressedImage(header=header or Header(), format=fmt)
    msg.data = _bytes(enc.tobytes())
    return msg


# --------------------------------------------------------------------------------------------------- camera
def camera_info_msg(camera: Camera, header: Optional[Header] = None) -> CameraInfo:
    """Camera -> CameraInfo (R identity, P = [K|0]); what a monocular camera driver publishes."""
    K = np.asarray(camera.K, np.float64)
    P = np.zeros((3, 4))
    P[:, :3] = K
    model = camera.model if camera.model not in ("none", "") else "plumb_bob"
    D = np.asarray(camera.D, np.float64).ravel()
    if model == "plumb_bob" and D.size == 0:
        D = np.zeros(5)
    return CameraInfo(header=header or Header(), width=int(camera.width), height=int(camera.height),
                      distortion_model=model, d=D.tolist(), k=K.ravel().tolist(),
                      r=np.eye(3).ravel().tolist(), p=P.ravel().tolist())


# --------------------------------------------------------------------------------------------------- time
def sec_to_stamp(t: float) -> Time:
    """Float seconds -> builtin_interfaces/Time, rounded to the nanosecond."""
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


# --------------------------------------------------------------------------------------------------- poses
def _pose_fields(target, T: np.ndarray) -> None:
    """Fill a geometry_msgs Pose from a 4x4."""
    q = quat_from_matrix(T[:3, :3])
    target.position.x, target.position.y, target.position.z = (float(v) for v in T[:3, 3])
    target.orientation.x, target.orientation.y, target.orientation.z, target.orientation.w = (float(v) for v in q)


def odometry_msg(T_odom_base: np.ndarray, pose_cov: np.ndarray, twist: np.ndarray, twist_cov: np.ndarray,
                 stamp: Time, odom_frame: str, base_frame: str) -> Odometry:
    """nav_msgs/Odometry: pose in ``odom_frame``, twist in ``base_frame`` (REP-105), row-major covariances."""
    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = odom_frame
    msg.child_frame_id = base_frame
    _pose_fields(msg.pose.pose, T_odom_base)
    msg.pose.covariance = np.asarray(pose_cov, np.float64).reshape(36).copy()
    lin, ang = msg.twist.twist.linear, msg.twist.twist.angular
    lin.x, lin.y, lin.z, ang.x, ang.y, ang.z = (float(v) for v in twist)
    msg.twist.covariance = np.asarray(twist_cov, np.float64).reshape(36).copy()
    return msg


def transform_stamped(T_parent_child: np.ndarray, stamp: Time, parent: str, child: str) -> TransformStamped:
    """Build the TF a broadcaster sends for ``parent -> child`` (the pose of child in parent)."""
    msg = TransformStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = parent
    msg.child_frame_id = child
    q = quat_from_matrix(T_parent_child[:3, :3])
    tr, rot = msg.transform.translation, msg.transform.rotation
    tr.x, tr.y, tr.z = (float(v) for v in T_parent_child[:3, 3])
    rot.x, rot.y, rot.z, rot.w = (float(v) for v in q)
    return msg


def pose_stamped(T: np.ndarray, stamp: Time, frame: str) -> PoseStamped:
    """Convert a 4x4 pose -> geometry_msgs/PoseStamped in ``frame``."""
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    _pose_fields(msg.pose, T)
    return msg


def transform_to_matrix(tf) -> np.ndarray:
    """geometry_msgs Transform (or TransformStamped.transform) -> 4x4."""
    t, r = tf.translation, tf.rotation
    return transform_from_xyzq([t.x, t.y, t.z, r.x, r.y, r.z, r.w])


def pose_to_matrix(pose) -> np.ndarray:
    """geometry_msgs Pose -> 4x4."""
    p, r = pose.position, pose.orientation
    return transform_from_xyzq([p.x, p.y, p.z, r.x, r.y, r.z, r.w])


# --------------------------------------------------------------------------------------------------- match cloud
_NP_TO_POINTFIELD = {np.dtype("int8"): PointField.INT8, np.dtype("uint8"): PointField.UINT8,
                     np.dtype("int16"): PointField.INT16, np.dtype("uint16"): PointField.UINT16,
                     np.dtype("int32"): PointField.INT32, np.dtype("uint32"): PointField.UINT32,
                     np.dtype("float32"): PointField.FLOAT32, np.dtype("float64"): PointField.FLOAT64}
_POINTFIELD_TO_NP = {v: k for k, v in _NP_TO_POINTFIELD.items()}

#: Fields of the ``matches`` cloud, in this order, packed without padding (little endian):
#: x y z float32 metres in the current camera frame (only when depth is known; NaN where invalid),
#: track_id uint32 (persistent id along a track), u0 v0 float32 reference-frame pixels,
#: u1 v1 float32 current-frame pixels, score float32 match confidence in [0, 1].
XYZ_FIELDS = (("x", "<f4"), ("y", "<f4"), ("z", "<f4"))
MATCH_FIELDS = (("track_id", "<u4"), ("u0", "<f4"), ("v0", "<f4"), ("u1", "<f4"), ("v1", "<f4"), ("score", "<f4"))


def match_dtype(with_xyz: bool) -> np.dtype:
    """Return the structured dtype of the ``matches`` cloud (see MATCH_FIELDS), with or without x y z."""
    return np.dtype(list(XYZ_FIELDS + MATCH_FIELDS) if with_xyz else list(MATCH_FIELDS))


def pack_cloud(points: np.ndarray, header: Header) -> PointCloud2:
    """Structured array (packed, little endian) -> unordered PointCloud2 (height 1) with standard PointFields."""
    fields = []
    for name in points.dtype.names:
        dt, offset = points.dtype.fields[name][:2]
        fields.append(PointField(name=name, offset=int(offset), datatype=_NP_TO_POINTFIELD[dt.newbyteorder("=")],
                                 count=1))
    floats = [n for n in points.dtype.names if points.dtype[n].kind == "f"]
    dense = all(bool(np.all(np.isfinite(points[n]))) for n in floats)
    msg = PointCloud2(header=header, height=1, width=int(len(points)), fields=fields, is_bigendian=False,
                      point_step=int(points.dtype.itemsize), row_step=int(points.dtype.itemsize * len(points)),
                      is_dense=dense)
    msg.data = _bytes(np.ascontiguousarray(points).tobytes())
    return msg


def matches_cloud(points0: np.ndarray, points1: np.ndarray, scores: np.ndarray, track_ids: np.ndarray,
                  header: Header, xyz: Optional[np.ndarray] = None) -> PointCloud2:
    """One point per match (see MATCH_FIELDS); ``xyz`` (M,3) metres in the current camera frame, or None."""
    out = np.zeros(len(points1), match_dtype(xyz is not None))
    if xyz is not None:
        out["x"], out["y"], out["z"] = (np.asarray(xyz, np.float32)[:, i] for i in range(3))
    out["track_id"] = np.asarray(track_ids).astype(np.uint32)
    out["u0"], out["v0"] = np.asarray(points0, np.float32).T if len(points0) else ([], [])
    out["u1"], out["v1"] = np.asarray(points1, np.float32).T if len(points1) else ([], [])
    out["score"] = np.asarray(scores, np.float32)
    return pack_cloud(out, header)


def cloud_to_numpy(msg: PointCloud2) -> np.ndarray:
    """PointCloud2 -> structured array, read from the message's own field layout (any order / padding).

    A layout that does not fit (fields past ``point_step``, rows shorter than ``width`` points, too little data)
    raises ConversionError ``bad_cloud`` / ``short_data``.
    """
    endian = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in _POINTFIELD_TO_NP or f.count != 1:
            raise ConversionError(ConversionReason.BAD_CLOUD, f"field {f.name}: datatype {f.datatype} count {f.count}")
        fmt = _POINTFIELD_TO_NP[f.datatype].newbyteorder(endian)
        if f.offset + fmt.itemsize > msg.point_step:
            raise ConversionError(ConversionReason.BAD_CLOUD,
                                  f"field {f.name} at {f.offset} ends past point_step {msg.point_step}")
        names.append(f.name)
        formats.append(fmt)
        offsets.append(f.offset)
    try:
        dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step})
    except (ValueError, TypeError) as exc:  # duplicate or overlapping fields
        raise ConversionError(ConversionReason.BAD_CLOUD, str(exc)) from None
    h, w, step, row = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    if h * w == 0:
        return np.zeros(0, dtype)
    if step == 0 or row < w * step:
        raise ConversionError(ConversionReason.BAD_CLOUD, f"row_step {row} < width {w} x point_step {step}")
    buf = np.frombuffer(msg.data, np.uint8)
    if buf.size < h * row:
        raise ConversionError(ConversionReason.SHORT_DATA, f"{buf.size} bytes < height {h} x row_step {row}")
    rows = buf[: row * h].reshape(h, row)[:, : w * step]
    return np.ascontiguousarray(rows).view(dtype).reshape(-1)
