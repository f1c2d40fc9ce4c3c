"""ROS message <-> numpy, and the message builders of the node, as plain functions.

Nothing here spins a node: every function can be tested with message objects alone. rclpy message packages
are imported at module level (this module is the node's helper); cv_bridge is used where it imports, else
numpy (cv_bridge is not installable from PyPI).

Conventions (REP-103/105): camera optical frame z forward, x right, y down; poses ``T_a_b`` map points of b into
a; ``nav_msgs/Odometry`` pose is in ``header.frame_id`` (odom), twist in ``child_frame_id`` (base_link);
6x6 covariances are row-major in the order x y z roll pitch yaw (pose) / vx vy vz wx wy wz (twist).
"""
from __future__ import annotations

import array
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TransformStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from lightglue_ros.core.lie import skew
from lightglue_ros.core.types import DISTORTION_MODELS, Camera

try:  # ROS 2 cv_bridge: only on a real ROS install
    from cv_bridge import CvBridge

    _BRIDGE: Optional["CvBridge"] = CvBridge()
except Exception:  # noqa: BLE001 - any import failure means "not available"
    _BRIDGE = None

HAVE_CV_BRIDGE = _BRIDGE is not None


class ConversionError(ValueError):
    """A message that cannot become an array. ``reason`` is a short stable key the node counts outcomes by."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------------------------------- images
@dataclass(frozen=True)
class Encoding:
    channels: int
    dtype: str  # numpy base type; byte order comes from is_bigendian
    order: str  # channel order as stored: "", "rgb", "bgr", "rgba", "bgra"


ENCODINGS = {
    "mono8": Encoding(1, "u1", ""),
    "8UC1": Encoding(1, "u1", ""),
    "mono16": Encoding(1, "u2", ""),
    "16UC1": Encoding(1, "u2", ""),
    "32FC1": Encoding(1, "f4", ""),
    "rgb8": Encoding(3, "u1", "rgb"),
    "bgr8": Encoding(3, "u1", "bgr"),
    "rgba8": Encoding(4, "u1", "rgba"),
    "bgra8": Encoding(4, "u1", "bgra"),
}
IMAGE_ENCODINGS = ("mono8", "mono16", "rgb8", "bgr8", "rgba8", "bgra8")
DEPTH_ENCODINGS = ("16UC1", "32FC1")
MASK_ENCODINGS = ("mono8", "8UC1")


def _bytes(data) -> array.array:
    """uint8[] field value without the per-element type check rclpy's setter runs on lists and bytes."""
    return array.array("B", data if isinstance(data, (bytes, bytearray)) else bytes(data))


def _raw_array(msg: Image, allowed: Sequence[str]) -> np.ndarray:
    """The pixels of an Image as stored (HxW or HxWxC, native byte order), after validating the layout."""
    enc = ENCODINGS.get(msg.encoding)
    if enc is None or msg.encoding not in allowed:
        raise ConversionError("unknown_encoding", f"{msg.encoding!r} (accepted: {', '.join(allowed)})")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise ConversionError("empty_image", f"{w}x{h}")
    pixel = enc.channels * np.dtype(enc.dtype).itemsize
    if step < w * pixel:
        raise ConversionError("bad_step", f"step {step} < width {w} x {pixel} bytes")
    buf = np.frombuffer(msg.data, np.uint8)
    if buf.size < h * step:
        raise ConversionError("short_data", f"{buf.size} bytes < height {h} x step {step}")
    if _BRIDGE is not None:
        try:
            return np.asarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough"))
        except Exception as exc:  # noqa: BLE001 - cv_bridge raises its own error types
            raise ConversionError("cv_bridge", str(exc)) from exc
    rows = buf[: h * step].reshape(h, step)[:, : w * pixel]  # drop per-row padding
    dtype = np.dtype(enc.dtype).newbyteorder(">" if msg.is_bigendian else "<")
    out = np.ascontiguousarray(rows).view(dtype).astype(dtype.newbyteorder("="), copy=False)
    return out.reshape(h, w) if enc.channels == 1 else out.reshape(h, w, enc.channels)


def _to_rgb(pixels: np.ndarray, order: str) -> np.ndarray:
    if order in ("", "rgb"):
        return pixels
    if order == "bgr":
        return pixels[..., ::-1]
    if order == "rgba":
        return pixels[..., :3]
    return pixels[..., 2::-1]  # bgra


def image_to_numpy(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> HxW (mono8 uint8, mono16 uint16) or HxWx3 RGB uint8 (alpha dropped)."""
    pixels = _raw_array(msg, IMAGE_ENCODINGS)
    return np.ascontiguousarray(_to_rgb(pixels, ENCODINGS[msg.encoding].order))


def numpy_to_image(pixels: np.ndarray, encoding: str = "rgb8", header: Optional[Header] = None) -> Image:
    """HxW / HxWx3 RGB array -> Image in ``encoding`` (reorders RGB into bgr/rgba/bgra as asked)."""
    enc = ENCODINGS.get(encoding)
    if enc is None:
        raise ConversionError("unknown_encoding", repr(encoding))
    data = np.asarray(pixels)
    if enc.channels > 1:
        if data.ndim != 3 or data.shape[2] != 3:
            raise ConversionError("bad_shape", f"{data.shape} for {encoding}")
        if enc.order == "bgr":
            data = data[..., ::-1]
        elif enc.order in ("rgba", "bgra"):
            rgb = data[..., ::-1] if enc.order == "bgra" else data
            data = np.concatenate([rgb, np.full(data.shape[:2] + (1,), 255, data.dtype)], axis=2)
    elif data.ndim != 2:
        raise ConversionError("bad_shape", f"{data.shape} for {encoding}")
    data = np.ascontiguousarray(data.astype(np.dtype(enc.dtype).newbyteorder("<"), copy=False))
    msg = Image(header=header or Header(), height=int(data.shape[0]), width=int(data.shape[1]),
                encoding=encoding, is_bigendian=0, step=int(data.strides[0]))
    msg.data = _bytes(data.tobytes())
    return msg


def compressed_to_numpy(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> HxW or HxWx3 RGB uint8/uint16."""
    buf = np.frombuffer(msg.data, np.uint8)
    if buf.size == 0:
        raise ConversionError("empty_image", "no compressed data")
    try:
        pixels = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # some corrupt headers raise instead of returning None
        raise ConversionError("decode_failed", f"format {msg.format!r}, {buf.size} bytes: {exc}") from None
    if pixels is None or pixels.size == 0:
        raise ConversionError("decode_failed", f"format {msg.format!r}, {buf.size} bytes")
    # OpenCV also decodes HDR / float TIFF and odd channel counts: a camera image is 8/16-bit mono, BGR or BGRA.
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ConversionError("unsupported_pixel_type", f"decoded {pixels.dtype} pixels")
    if pixels.ndim == 3 and pixels.shape[2] not in (3, 4):
        raise ConversionError("unsupported_channels", f"decoded {pixels.shape[2]} channels")
    if pixels.ndim == 3:  # OpenCV decodes to BGR(A)
        pixels = pixels[..., 2::-1]
    return np.ascontiguousarray(pixels)


def numpy_to_compressed(pixels: np.ndarray, fmt: str = "jpeg", header: Optional[Header] = None) -> CompressedImage:
    """RGB / mono array -> CompressedImage (the players of tests and demo use it)."""
    bgr = pixels[..., ::-1] if pixels.ndim == 3 else pixels
    ok, enc = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", np.ascontiguousarray(bgr))
    if not ok:
        raise ConversionError("encode_failed", fmt)
    msg = CompressedImage(header=header or Header(), format=fmt)
    msg.data = _bytes(enc.tobytes())
    return msg


def depth_to_numpy(msg: Image) -> np.ndarray:
    """Depth Image (16UC1 millimetres or 32FC1 metres) -> HxW float32 metres; 0 or NaN = invalid."""
    pixels = _raw_array(msg, DEPTH_ENCODINGS)
    if msg.encoding == "16UC1":
        return pixels.astype(np.float32) * np.float32(1e-3)
    return pixels.astype(np.float32, copy=True)


def mask_to_numpy(msg: Image) -> np.ndarray:
    """mono8 mask Image -> HxW bool, True = ignore this pixel."""
    return _raw_array(msg, MASK_ENCODINGS) != 0


# --------------------------------------------------------------------------------------------------- camera
def camera_from_msg(msg: CameraInfo) -> Camera:
    """CameraInfo -> Camera, validated; each problem has its own ConversionError reason.

    Reasons: ``bad_camera_info_size`` (zero width or height), ``bad_camera_info_k`` (K not finite, a focal length
    not positive, last row not 0 0 1: an unset K is all zeros), ``bad_camera_info_unknown_model`` (a distortion
    model the camera model does not know), ``bad_camera_info_distortion`` (coefficients that do not fit the model).
    """
    from lightglue_ros import geometry as geometry  # lazy: geometry pulls poselib, not needed for plain image conversion

    if msg.width == 0 or msg.height == 0:
        raise ConversionError("bad_camera_info_size", f"size {msg.width}x{msg.height}")
    K = np.array(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(K)) or not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], (0, 0, 1)):
        raise ConversionError("bad_camera_info_k", f"K = {K.ravel().tolist()}")
    model = (msg.distortion_model or "none").strip().lower()
    if model not in DISTORTION_MODELS:
        raise ConversionError("bad_camera_info_unknown_model",
                              f"distortion model {msg.distortion_model!r} (known: {', '.join(DISTORTION_MODELS)})")
    cam = geometry.camera_from_info(int(msg.width), int(msg.height), K, np.array(msg.d, np.float64), model)
    problem = geometry.validate_camera(cam)
    if problem:
        raise ConversionError("bad_camera_info_distortion", problem)
    return cam


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


def scale_camera(camera: Camera, sx: float, sy: float) -> Camera:
    """The same camera seen in an image resized by (sx, sy): pixel centres stay pixel centres."""
    K = np.array(camera.K, np.float64)
    K[0, 0] *= sx
    K[1, 1] *= sy
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return Camera(int(round(camera.width * sx)), int(round(camera.height * sy)), K, np.array(camera.D), camera.model)


def unscale_points(points: np.ndarray, scale: float) -> np.ndarray:
    """Pixels of a frame resized by ``scale`` (see `limit_size`) -> pixels of the original frame."""
    pts = np.asarray(points, np.float32)
    return pts if scale == 1.0 else (pts + 0.5) / np.float32(scale) - 0.5


@dataclass
class Resized:
    image: np.ndarray
    camera: Optional[Camera]
    depth: Optional[np.ndarray]
    mask: Optional[np.ndarray]
    scale: float  # resized pixels per original pixel (1.0 = untouched)


def limit_size(image: np.ndarray, camera: Optional[Camera], depth: Optional[np.ndarray],
               mask: Optional[np.ndarray], max_side: int) -> Resized:
    """Shrink the frame so its longer side is at most ``max_side`` (0 = no limit), with K, depth and mask."""
    h, w = image.shape[:2]
    if max_side <= 0 or max(h, w) <= max_side:
        return Resized(image, camera, depth, mask, 1.0)
    s = max_side / float(max(h, w))
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    sx, sy = size[0] / w, size[1] / h
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # Depth and masks must not be blended across edges: nearest neighbour keeps valid values only.
    d = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST) if depth is not None else None
    m = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 if mask is not None else None
    cam = scale_camera(camera, sx, sy) if camera is not None else None
    return Resized(small, cam, d, m, s)


# --------------------------------------------------------------------------------------------------- time
def stamp_to_sec(stamp: Time) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def sec_to_stamp(t: float) -> Time:
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


# --------------------------------------------------------------------------------------------------- rotations
def quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion (x, y, z, w), w >= 0."""
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
    """[x y z qx qy qz qw] -> 4x4 (the ``camera_to_base`` parameter layout, same as a static TF)."""
    if len(values) != 7:
        raise ValueError(f"expected 7 values x y z qx qy qz qw, got {len(values)}")
    q = np.asarray(values[3:], np.float64)
    if not np.all(np.isfinite(values)) or np.linalg.norm(q) < 1e-9:
        raise ValueError(f"not a valid transform: {list(values)}")
    T = np.eye(4)
    T[:3, :3] = matrix_from_quat(q)
    T[:3, 3] = values[:3]
    return T


#: Base (x forward, y left, z up) <- camera optical (z forward, x right, y down), REP-103; zero translation.
OPTICAL_TO_BODY_XYZQ = (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5)


# --------------------------------------------------------------------------------------------------- odometry frames
def camera_pose_to_base(T_world_cam: np.ndarray, T_base_cam: np.ndarray) -> np.ndarray:
    """Camera pose in the odometry world (= first camera optical frame) -> base pose in ``odom``.

    ``odom`` is the base frame at the first image: T_odom_base = T_base_cam . T_world_cam . T_base_cam^-1
    (the camera is rigidly mounted, so base motion is camera motion seen through the extrinsic).
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
    """The TF a broadcaster sends for ``parent -> child`` (the pose of child in parent)."""
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
            raise ConversionError("bad_cloud", f"field {f.name}: datatype {f.datatype} count {f.count}")
        fmt = _POINTFIELD_TO_NP[f.datatype].newbyteorder(endian)
        if f.offset + fmt.itemsize > msg.point_step:
            raise ConversionError("bad_cloud", f"field {f.name} at {f.offset} ends past point_step {msg.point_step}")
        names.append(f.name)
        formats.append(fmt)
        offsets.append(f.offset)
    try:
        dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step})
    except (ValueError, TypeError) as exc:  # duplicate or overlapping fields
        raise ConversionError("bad_cloud", str(exc)) from None
    h, w, step, row = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    if h * w == 0:
        return np.zeros(0, dtype)
    if step == 0 or row < w * step:
        raise ConversionError("bad_cloud", f"row_step {row} < width {w} x point_step {step}")
    buf = np.frombuffer(msg.data, np.uint8)
    if buf.size < h * row:
        raise ConversionError("short_data", f"{buf.size} bytes < height {h} x row_step {row}")
    rows = buf[: row * h].reshape(h, row)[:, : w * step]
    return np.ascontiguousarray(rows).view(dtype).reshape(-1)


# --------------------------------------------------------------------------------------------------- match image
def draw_matches(image0: np.ndarray, image1: np.ndarray, points0: np.ndarray, points1: np.ndarray,
                 scores: np.ndarray, text: str, max_lines: int = 150) -> np.ndarray:
    """Reference | current side by side with a text band on top.

    Every match gets a dot on both images; at most ``max_lines`` (an even subset) get a line, so the images stay
    visible. Colour by score: red (low) -> yellow -> green (high).
    """
    a, b = _as_rgb8(image0), _as_rgb8(image1)
    band = 22
    h = max(a.shape[0], b.shape[0])
    canvas = np.zeros((h + band, a.shape[1] + b.shape[1], 3), np.uint8)
    canvas[band:band + a.shape[0], : a.shape[1]] = a
    canvas[band:band + b.shape[0], a.shape[1]:] = b
    n = len(points0)
    if n:
        s = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
        colours = np.stack([np.minimum(1.0, 2.0 * (1.0 - s)), np.minimum(1.0, 2.0 * s), np.zeros_like(s)], 1) * 255
        q0 = np.round(np.asarray(points0, np.float64) + (0, band)).astype(int)
        q1 = np.round(np.asarray(points1, np.float64) + (a.shape[1], band)).astype(int)
        overlay = canvas.copy()
        for i in np.unique(np.linspace(0, n - 1, min(n, max_lines)).astype(int)):
            cv2.line(overlay, tuple(q0[i]), tuple(q1[i]), tuple(float(c) for c in colours[i]), 1, cv2.LINE_AA)
        canvas = cv2.addWeighted(overlay, 0.6, canvas, 0.4, 0.0)  # lines translucent: the scene shows through
        for p, q, c in zip(q0, q1, colours):
            colour = tuple(float(v) for v in c)
            cv2.circle(canvas, tuple(p), 2, colour, -1, cv2.LINE_AA)
            cv2.circle(canvas, tuple(q), 2, colour, -1, cv2.LINE_AA)
    cv2.putText(canvas, text, (4, band - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def _as_rgb8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
