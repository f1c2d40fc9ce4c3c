"""ROS camera messages -> numpy arrays and `Camera`s: the one decoder of the live node and of the bag reader.

Works on plain fields, not on message classes, so an rclpy message (`ros.node`) and a message deserialised by
`rosbags` (`io.datasets.BagSequence`) go through the same code and read the same:

- ``sensor_msgs/Image``: ``encoding``, ``height``, ``width``, ``step``, ``is_bigendian``, ``data``;
- ``sensor_msgs/CompressedImage``: ``format``, ``data``;
- ``sensor_msgs/CameraInfo``: ``width``, ``height``, ``k``, ``d``, ``distortion_model``;
- ``builtin_interfaces/Time``: ``sec``, ``nanosec``.

No ROS package is imported here. Every refusal is a `ConversionError` whose ``reason`` (a `ConversionReason`) is
the short stable key the node counts outcomes by (``failed.bad_step``, ``failed.depth_short_data``, ...).

What is accepted (REP 118 for depth):

==============  ===========================================================================================
image           mono8 / 8UC1 -> HxW uint8, mono16 / 16UC1 -> HxW uint16, rgb8 / bgr8 / rgba8 / bgra8 ->
                HxWx3 RGB uint8 (alpha dropped); any ``step`` >= the row, either byte order
compressed      jpeg / png (anything OpenCV decodes to 8/16-bit mono, BGR or BGRA) -> HxW mono (uint8 or
                uint16) or HxWx3 RGB uint8 (16-bit colour is reduced to 8 bits, as for image files)
depth           16UC1 / mono16 millimetres or 32FC1 metres -> HxW float32 metres (0 or NaN: no depth)
compressed      ``compressedDepth`` png (16UC1 millimetres, or 32FC1 as quantised inverse depth) or a plain
depth           16-bit png in millimetres -> HxW float32 metres
mask            mono8 / 8UC1 -> HxW bool, True = ignore the pixel
CameraInfo      a valid K and size; all-zero (or empty) D -> model ``none`` (nothing to undistort); names
                as in `distortion_model_name` (ROS, Kalibr and EuRoC spellings)
==============  ===========================================================================================
"""
from __future__ import annotations

import array
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Optional, Protocol, Sequence

import cv2
import numpy as np

from lightglue_ros.core.types import DISTORTION_MODELS, Camera
from lightglue_ros.geometry.camera import validate_camera


class ConversionReason(StrEnum):
    """Why a message could not be converted (a StrEnum: equal to, and printed as, its plain string)."""

    UNKNOWN_ENCODING = "unknown_encoding"
    EMPTY_IMAGE = "empty_image"
    BAD_STEP = "bad_step"
    SHORT_DATA = "short_data"
    BAD_SHAPE = "bad_shape"
    DECODE_FAILED = "decode_failed"
    ENCODE_FAILED = "encode_failed"
    UNSUPPORTED_PIXEL_TYPE = "unsupported_pixel_type"
    UNSUPPORTED_CHANNELS = "unsupported_channels"
    UNSUPPORTED_FORMAT = "unsupported_format"
    BAD_CLOUD = "bad_cloud"
    BAD_CAMERA_INFO_SIZE = "bad_camera_info_size"
    BAD_CAMERA_INFO_K = "bad_camera_info_k"
    BAD_CAMERA_INFO_UNKNOWN_MODEL = "bad_camera_info_unknown_model"
    BAD_CAMERA_INFO_DISTORTION = "bad_camera_info_distortion"


class ConversionError(ValueError):
    """A message that cannot become an array; ``reason`` is the key the node counts outcomes by."""

    def __init__(self, reason: ConversionReason, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = ConversionReason(reason)
        self.detail = detail


# --------------------------------------------------------------------------------------------------- the fields
class ImageFields(Protocol):
    """What is read of a ``sensor_msgs/Image``."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int
    data: Any  # bytes, array.array('B') (rclpy) or a uint8 numpy array (rosbags)


class CompressedFields(Protocol):
    """What is read of a ``sensor_msgs/CompressedImage``."""

    format: str
    data: Any


class CameraInfoFields(Protocol):
    """What is read of a ``sensor_msgs/CameraInfo``."""

    width: int
    height: int
    k: Sequence[float]
    d: Sequence[float]
    distortion_model: str


class StampFields(Protocol):
    """What is read of a ``builtin_interfaces/Time``."""

    sec: int
    nanosec: int


# --------------------------------------------------------------------------------------------------- encodings
@dataclass(frozen=True)
class Encoding:
    """How an Image encoding stores a pixel."""

    channels: int
    dtype: str  # numpy base type; the byte order comes from is_bigendian
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
#: Camera images. 8UC1 / 16UC1 are what some mono and infrared drivers publish; 32FC1 is depth, not a picture.
IMAGE_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1", "rgb8", "bgr8", "rgba8", "bgra8")
#: Depth images (REP 118: 16UC1 millimetres, 32FC1 metres; mono16 is the same bytes under another name).
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
MASK_ENCODINGS = ("mono8", "8UC1")


def _buffer(data) -> np.ndarray:
    """Return the ``data`` field as a flat uint8 array, without copying where the field already is a buffer."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, np.uint8)
    return np.asarray(data, np.uint8).reshape(-1)  # a list of ints


def _raw_pixels(msg: ImageFields, allowed: Sequence[str]) -> np.ndarray:
    """Return the pixels of an Image as stored (HxW or HxWxC, native byte order), after validating the layout."""
    enc = ENCODINGS.get(msg.encoding) if msg.encoding in allowed else None
    if enc is None:
        raise ConversionError(ConversionReason.UNKNOWN_ENCODING, f"{msg.encoding!r} (accepted: {', '.join(allowed)})")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise ConversionError(ConversionReason.EMPTY_IMAGE, f"{w}x{h}")
    pixel = enc.channels * np.dtype(enc.dtype).itemsize
    if step < w * pixel:
        raise ConversionError(ConversionReason.BAD_STEP, f"step {step} < width {w} x {pixel} bytes")
    buf = _buffer(msg.data)
    if buf.size < h * step:
        raise ConversionError(ConversionReason.SHORT_DATA, f"{buf.size} bytes < height {h} x step {step}")
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


# --------------------------------------------------------------------------------------------------- images
def image_to_numpy(msg: ImageFields) -> np.ndarray:
    """Image -> HxW (mono8 uint8, mono16 uint16) or HxWx3 RGB uint8 (alpha dropped)."""
    pixels = _raw_pixels(msg, IMAGE_ENCODINGS)
    return np.ascontiguousarray(_to_rgb(pixels, ENCODINGS[msg.encoding].order))


def _imdecode(buf: np.ndarray, fmt: str) -> np.ndarray:
    if buf.size == 0:
        raise ConversionError(ConversionReason.EMPTY_IMAGE, "no compressed data")
    try:
        pixels = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # some corrupt headers raise instead of returning None
        raise ConversionError(ConversionReason.DECODE_FAILED, f"format {fmt!r}, {buf.size} bytes: {exc}") from None
    if pixels is None or pixels.size == 0:
        raise ConversionError(ConversionReason.DECODE_FAILED, f"format {fmt!r}, {buf.size} bytes")
    # OpenCV also decodes HDR / float TIFF and odd channel counts: a camera image is 8/16-bit mono, BGR or BGRA.
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ConversionError(ConversionReason.UNSUPPORTED_PIXEL_TYPE, f"decoded {pixels.dtype} pixels")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] not in (3, 4):
        raise ConversionError(ConversionReason.UNSUPPORTED_CHANNELS, f"decoded {pixels.shape[2]} channels")
    return pixels


def compressed_to_numpy(msg: CompressedFields) -> np.ndarray:
    """Decode a CompressedImage (jpeg / png) -> HxW mono (uint8 or uint16) or HxWx3 RGB uint8."""
    pixels = _imdecode(_buffer(msg.data), msg.format)
    if pixels.ndim == 3:  # OpenCV decodes to BGR(A); colour images are 8-bit downstream (like image files)
        if pixels.dtype == np.uint16:
            pixels = (pixels >> 8).astype(np.uint8)
        pixels = pixels[..., 2::-1]
    return np.ascontiguousarray(pixels)


# --------------------------------------------------------------------------------------------------- depth, mask
def depth_to_numpy(msg: ImageFields) -> np.ndarray:
    """Depth Image (16UC1 / mono16 millimetres or 32FC1 metres) -> HxW float32 metres; 0 or NaN = invalid."""
    pixels = _raw_pixels(msg, DEPTH_ENCODINGS)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) * np.float32(1e-3)
    return pixels.astype(np.float32, copy=True)


#: compressed_depth_image_transport's ConfigHeader before the png: int32 format, float32 depthQuantA, depthQuantB.
_DEPTH_HEADER = np.dtype([("format", "<i4"), ("quant_a", "<f4"), ("quant_b", "<f4")])
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def compressed_depth_to_numpy(msg: CompressedFields) -> np.ndarray:
    """Compressed depth -> HxW float32 metres (0 or NaN = invalid).

    ``format`` "16UC1; compressedDepth [png]": a png of millimetres after a 12-byte header; "32FC1; compressedDepth
    [png]": the png holds quantised inverse depth, depth = quant_a / (value - quant_b) (value 0 = no depth), the
    inverse of compressed_depth_image_transport's encoder. Any other format: a 16-bit png of millimetres.
    """
    fmt = msg.format or ""
    encoding, _, rest = (s.strip() for s in fmt.partition(";"))
    buf = _buffer(msg.data)
    header = None
    if "compresseddepth" in fmt.lower():
        if "rvl" in rest.lower():
            raise ConversionError(ConversionReason.UNSUPPORTED_FORMAT, f"{fmt!r} (only png compressedDepth)")
        start = buf[:64].tobytes().find(_PNG_MAGIC)  # the header is 12 bytes; older encoders wrote none
        if start >= _DEPTH_HEADER.itemsize:
            header = buf[:_DEPTH_HEADER.itemsize].view(_DEPTH_HEADER)[0]
        buf = buf[max(start, 0):]
    pixels = _imdecode(buf, fmt)
    if pixels.ndim != 2 or pixels.dtype != np.uint16:
        raise ConversionError(ConversionReason.UNSUPPORTED_PIXEL_TYPE,
                              f"depth must decode to 16-bit mono, got {pixels.dtype} x {pixels.shape[2:] or 1}")
    if encoding.upper() == "32FC1" and header is not None:
        a, b = np.float32(header["quant_a"]), np.float32(header["quant_b"])
        inverse = pixels.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = a / (inverse - b)
        return np.where(pixels > 0, depth, np.float32(np.nan)).astype(np.float32)
    return pixels.astype(np.float32) * np.float32(1e-3)


def mask_to_numpy(msg: ImageFields) -> np.ndarray:
    """mono8 mask Image -> HxW bool, True = ignore this pixel."""
    return _raw_pixels(msg, MASK_ENCODINGS) != 0


# --------------------------------------------------------------------------------------------------- camera
#: Other spellings of the camera model's distortion names (Kalibr, EuRoC, OpenCV), after lower-casing and '-' -> '_'.
DISTORTION_ALIASES = {"": "none", "pinhole": "none", "radial_tangential": "radtan", "kannala_brandt": "equidistant",
                      "kb4": "equidistant", "equi": "equidistant"}


def distortion_model_name(name: Optional[str]) -> Optional[str]:
    """Map a distortion model name of ROS, Kalibr or EuRoC -> one of `DISTORTION_MODELS`, or None when unknown."""
    key = (name or "").strip().lower().replace("-", "_")
    key = DISTORTION_ALIASES.get(key, key)
    return key if key in DISTORTION_MODELS else None


def camera_from_msg(msg: CameraInfoFields) -> Camera:
    """Convert CameraInfo -> Camera, validated; each problem has its own `ConversionReason`.

    Reasons: ``bad_camera_info_size`` (zero width or height), ``bad_camera_info_k`` (K not 9 finite numbers, a
    focal length not positive, last row not 0 0 1: an unset K is all zeros), ``bad_camera_info_unknown_model`` (a
    distortion model the camera model does not know, whatever the coefficients), ``bad_camera_info_distortion``
    (coefficients that do not fit the model). All-zero or empty D gives model "none": nothing to undistort.
    """
    width, height = int(msg.width), int(msg.height)
    if width == 0 or height == 0:
        raise ConversionError(ConversionReason.BAD_CAMERA_INFO_SIZE, f"size {width}x{height}")
    K = np.asarray(msg.k, dtype=np.float64).ravel()
    if K.size != 9:
        raise ConversionError(ConversionReason.BAD_CAMERA_INFO_K, f"K has {K.size} numbers, expected 9")
    K = K.reshape(3, 3)
    if not np.all(np.isfinite(K)) or not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], (0, 0, 1)):
        raise ConversionError(ConversionReason.BAD_CAMERA_INFO_K, f"K = {K.ravel().tolist()}")
    model = distortion_model_name(msg.distortion_model)
    if model is None:
        raise ConversionError(ConversionReason.BAD_CAMERA_INFO_UNKNOWN_MODEL,
                              f"distortion model {msg.distortion_model!r} (known: {', '.join(DISTORTION_MODELS)})")
    D = np.asarray(msg.d, dtype=np.float64).ravel()
    if not np.any(D != 0):  # NaN != 0: a NaN coefficient is kept, and refused below
        D, model = np.zeros(0), "none"
    cam = Camera(width, height, K, D, model)
    problem = validate_camera(cam)
    if problem:
        raise ConversionError(ConversionReason.BAD_CAMERA_INFO_DISTORTION, problem)
    return cam


# --------------------------------------------------------------------------------------------------- time
def stamp_to_sec(stamp: StampFields) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9
