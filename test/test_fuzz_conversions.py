"""Property and fuzz tests of the message conversions: random sizes, encodings, steps, byte orders and bytes.

Every conversion either round-trips exactly or fails with a `ConversionError` (whose ``reason`` the node counts):
never another exception, never a wrong-shaped array. The node feeds whatever arrives on its topics to these
functions, so "fails cleanly" here is what keeps a malformed message from ending a frame in "exception".
"""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages (rclpy wheels) not installed")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from lightglue_ros.core import lie  # noqa: E402
from lightglue_ros.geometry import resize  # noqa: E402
from lightglue_ros.io import msg_decode as dec  # noqa: E402
from lightglue_ros.ros import msgs as cv  # noqa: E402
from lightglue_ros import geometry as geometry  # noqa: E402
from lightglue_ros.core.types import DISTORTION_MODELS, Camera  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL_ENCODINGS = tuple(dec.ENCODINGS)
CHANNEL_ORDER = {"rgb": [0, 1, 2], "bgr": [2, 1, 0], "rgba": [0, 1, 2], "bgra": [2, 1, 0]}


def stored_pixels(draw, encoding: str, h: int, w: int) -> np.ndarray:
    """Pixels as a camera stores them for ``encoding`` (random values, the encoding's type and channels)."""
    enc = dec.ENCODINGS[encoding]
    shape = (h, w) if enc.channels == 1 else (h, w, enc.channels)
    if enc.dtype == "f4":
        elements = st.floats(-1e6, 1e6, allow_nan=False, width=32)
    else:
        elements = st.integers(0, 255 if enc.dtype == "u1" else 65535)
    return draw(arrays(np.dtype(enc.dtype), shape, elements=elements))


def hand_built(pixels: np.ndarray, encoding: str, pad: int, bigendian: bool) -> Image:
    """An Image laid out by hand: rows of ``pad`` extra bytes, the byte order asked for."""
    h, w = pixels.shape[:2]
    data = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")).reshape(h, -1).view(np.uint8)
    data = np.concatenate([data, np.full((h, pad), 0xCD, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=data.shape[1])
    msg.data = data.tobytes()
    return msg


@st.composite
def laid_out_images(draw, encodings=ALL_ENCODINGS):
    encoding = draw(st.sampled_from(encodings))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    pixels = stored_pixels(draw, encoding, h, w)
    return pixels, encoding, draw(st.integers(0, 9)), draw(st.booleans())


# ------------------------------------------------------------------------------------------------ raw images
@FUZZ
@given(laid_out_images(dec.IMAGE_ENCODINGS))
def test_any_valid_layout_decodes_to_the_stored_pixels(case):
    pixels, encoding, pad, bigendian = case
    out = dec.image_to_numpy(hand_built(pixels, encoding, pad, bigendian))
    order = dec.ENCODINGS[encoding].order
    expected = pixels if not order else pixels[..., CHANNEL_ORDER[order]]
    assert out.dtype == pixels.dtype.newbyteorder("=") and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


@FUZZ
@given(st.sampled_from(dec.IMAGE_ENCODINGS), st.integers(1, 24), st.integers(1, 24), st.data())
def test_numpy_to_image_round_trips(encoding, h, w, data):
    enc = dec.ENCODINGS[encoding]
    shape = (h, w) if enc.channels == 1 else (h, w, 3)  # the API takes RGB; alpha is added for rgba/bgra
    pixels = data.draw(arrays(np.dtype(enc.dtype), shape))
    msg = cv.numpy_to_image(pixels, encoding, Header(frame_id="cam"))
    assert msg.step >= msg.width * enc.channels * np.dtype(enc.dtype).itemsize
    np.testing.assert_array_equal(dec.image_to_numpy(msg), pixels)


@st.composite
def arbitrary_images(draw):
    """Messages with fields a broken driver could send: any size, step, encoding, byte order and data length."""
    encoding = draw(st.one_of(st.sampled_from(ALL_ENCODINGS), st.sampled_from(("yuv422", "bayer_rggb8", "", "RGB8")),
                              st.text(max_size=12)))
    h = draw(st.one_of(st.integers(0, 40), st.sampled_from((2**31, 2**32 - 1))))
    w = draw(st.one_of(st.integers(0, 40), st.sampled_from((2**31, 2**32 - 1))))
    step = draw(st.one_of(st.integers(0, 200), st.sampled_from((2**32 - 1,))))
    n = draw(st.integers(0, 2000))
    msg = Image(height=h, width=w, encoding=encoding, step=step, is_bigendian=draw(st.integers(0, 1)))
    msg.data = draw(st.binary(min_size=n, max_size=n))
    return msg


def decodes_cleanly(fn, msg):
    """``fn(msg)``: the array, or None after a ConversionError (any other exception fails the test)."""
    try:
        return fn(msg)
    except dec.ConversionError as exc:
        assert exc.reason and exc.reason in str(exc)
        return None


@FUZZ
@given(arbitrary_images())
def test_arbitrary_images_decode_or_fail_cleanly(msg):
    out = decodes_cleanly(dec.image_to_numpy, msg)
    if out is not None:
        enc = dec.ENCODINGS[msg.encoding]
        assert out.shape[:2] == (msg.height, msg.width)
        assert out.ndim == (2 if enc.channels == 1 else 3) and (out.ndim == 2 or out.shape[2] == 3)
        assert msg.step >= msg.width * enc.channels * np.dtype(enc.dtype).itemsize
        assert len(msg.data) >= msg.height * msg.step


@FUZZ
@given(arbitrary_images())
def test_arbitrary_depth_and_masks_decode_or_fail_cleanly(msg):
    depth = decodes_cleanly(dec.depth_to_numpy, msg)
    if depth is not None:
        assert depth.dtype == np.float32 and depth.shape == (msg.height, msg.width)
        assert msg.encoding in dec.DEPTH_ENCODINGS
    mask = decodes_cleanly(dec.mask_to_numpy, msg)
    if mask is not None:
        assert mask.dtype == bool and mask.shape == (msg.height, msg.width)


@FUZZ
@given(laid_out_images(dec.DEPTH_ENCODINGS))
def test_depth_is_metres_in_either_encoding(case):
    pixels, encoding, pad, bigendian = case
    depth = dec.depth_to_numpy(hand_built(pixels, encoding, pad, bigendian))
    millimetres = encoding in ("16UC1", "mono16")
    expected = pixels.astype(np.float32) * (np.float32(1e-3) if millimetres else np.float32(1.0))
    np.testing.assert_array_equal(depth, expected)


@FUZZ
@given(laid_out_images(dec.IMAGE_ENCODINGS), st.sampled_from(("step", "short", "encoding", "empty")))
def test_one_broken_field_gives_its_reason(case, broken):
    pixels, encoding, pad, bigendian = case
    msg = hand_built(pixels, encoding, pad, bigendian)
    pixel = dec.ENCODINGS[encoding].channels * np.dtype(dec.ENCODINGS[encoding].dtype).itemsize
    if broken == "step":
        msg.step = msg.width * pixel - 1
    elif broken == "short":
        msg.data = bytes(msg.data)[: msg.height * msg.step - 1]
    elif broken == "encoding":
        msg.encoding = "yuv422"
    else:
        msg.width = 0
    reason = {"step": "bad_step", "short": "short_data", "encoding": "unknown_encoding", "empty": "empty_image"}[broken]
    with pytest.raises(dec.ConversionError) as err:
        dec.image_to_numpy(msg)
    assert err.value.reason == reason


# ------------------------------------------------------------------------------------------------ compressed
@FUZZ
@given(st.binary(max_size=3000), st.sampled_from(("jpeg", "png", "", "rgb8; jpeg compressed bgr8")))
def test_random_bytes_as_compressed_images_fail_cleanly(data, fmt):
    msg = CompressedImage(format=fmt)
    msg.data = data
    out = decodes_cleanly(dec.compressed_to_numpy, msg)
    if out is not None:  # random bytes that happen to decode: still a camera-like image
        assert out.dtype in (np.uint8, np.uint16) and out.ndim in (2, 3)


@FUZZ
@given(arrays(np.uint8, st.tuples(st.integers(1, 32), st.integers(1, 32), st.just(3))),
       st.sampled_from(("png", "jpeg")), st.data())
def test_damaged_compressed_images_fail_cleanly(pixels, fmt, data):
    good = bytes(cv.numpy_to_compressed(pixels, fmt).data)
    if fmt == "png":
        np.testing.assert_array_equal(dec.compressed_to_numpy(cv.numpy_to_compressed(pixels, fmt)), pixels)
    cut = data.draw(st.integers(0, len(good)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)), max_size=8))
    damaged = bytearray(good[:cut])
    for pos, value in flips:
        if pos < len(damaged):
            damaged[pos] = value
    msg = CompressedImage(format=fmt)
    msg.data = bytes(damaged)
    out = decodes_cleanly(dec.compressed_to_numpy, msg)
    if out is not None:
        assert out.dtype in (np.uint8, np.uint16) and out.ndim in (2, 3)


def test_float_and_odd_channel_images_are_refused():
    import cv2

    for ext, pixels, reason in ((".hdr", np.random.rand(8, 8, 3).astype(np.float32), "unsupported_pixel_type"),
                                (".tiff", np.random.rand(8, 8).astype(np.float32), "unsupported_pixel_type")):
        ok, buf = cv2.imencode(ext, pixels)
        assert ok
        msg = CompressedImage(format=ext[1:])
        msg.data = buf.tobytes()
        with pytest.raises(dec.ConversionError) as err:
            dec.compressed_to_numpy(msg)
        assert err.value.reason == reason


# ------------------------------------------------------------------------------------------------ camera_info
finite_or_not = st.one_of(st.floats(-1e4, 1e4, allow_nan=False), st.sampled_from((0.0, math.nan, math.inf, -math.inf)))


@st.composite
def camera_infos(draw):
    msg = CameraInfo(width=draw(st.integers(0, 5000)), height=draw(st.integers(0, 5000)))
    if draw(st.booleans()):  # a plausible K
        f = draw(st.floats(1.0, 5000.0))
        msg.k = [f, 0.0, draw(st.floats(0, 5000)), 0.0, f, draw(st.floats(0, 5000)), 0.0, 0.0, 1.0]
    else:
        msg.k = draw(st.lists(finite_or_not, min_size=9, max_size=9))
    msg.d = draw(st.lists(st.one_of(st.floats(-1, 1), finite_or_not), max_size=15))
    msg.distortion_model = draw(st.one_of(st.sampled_from(DISTORTION_MODELS + ("", "Plumb_Bob ", "kannala_brandt")),
                                          st.text(max_size=10)))
    return msg


@FUZZ
@given(camera_infos())
def test_camera_info_converts_to_a_valid_camera_or_fails_with_its_reason(msg):
    try:
        cam = dec.camera_from_msg(msg)
    except dec.ConversionError as exc:
        assert exc.reason.startswith("bad_camera_info_"), exc.reason
        return
    assert geometry.validate_camera(cam) == ""
    assert (cam.width, cam.height) == (msg.width, msg.height) and cam.model in DISTORTION_MODELS


@FUZZ
@given(st.integers(16, 4000), st.integers(16, 4000), st.floats(10, 5000), st.floats(10, 5000),
       st.sampled_from(("plumb_bob", "rational_polynomial", "equidistant")), st.data())
def test_camera_info_round_trips(w, h, fx, fy, model, data):
    n = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}[model]
    D = np.array(data.draw(st.lists(st.floats(-0.5, 0.5), min_size=n, max_size=n)))
    cam = Camera(w, h, np.array([[fx, 0, (w - 1) / 2], [0, fy, (h - 1) / 2], [0, 0, 1]]), D, model)
    back = dec.camera_from_msg(cv.camera_info_msg(cam))
    np.testing.assert_array_equal(back.K, cam.K)
    if np.any(D != 0):
        np.testing.assert_array_equal(back.D, D)
        assert (back.width, back.height, back.model) == (w, h, model)
    else:  # nothing to undistort: one rule for the node and the bag reader
        assert back.D.size == 0 and (back.width, back.height, back.model) == (w, h, "none")


# ------------------------------------------------------------------------------------------------ sizes, stamps, clouds
@FUZZ
@given(st.integers(1, 700), st.integers(1, 700), st.integers(0, 800), st.booleans())
def test_limit_size_keeps_the_camera_consistent_with_the_image(w, h, max_side, colour):
    image = np.zeros((h, w, 3) if colour else (h, w), np.uint8)
    cam = Camera.pinhole(w, h, 0.8 * w, 0.8 * w, (w - 1) / 2, (h - 1) / 2)
    small = resize.limit_size(image, cam, np.ones((h, w), np.float32), np.zeros((h, w), bool), max_side)
    sh, sw = small.image.shape[:2]
    assert (small.camera.width, small.camera.height) == (sw, sh)
    assert small.depth.shape == (sh, sw) and small.mask.shape == (sh, sw)
    if max_side and max(w, h) > max_side:
        assert max(sw, sh) <= max_side and small.scale < 1
    else:
        assert (sw, sh) == (w, h) and small.scale == 1.0
    # The principal point stays the image centre, in the resized image's own pixels.
    assert abs(small.camera.cx - (sw - 1) / 2) < 0.5 + 1e-9 and abs(small.camera.cy - (sh - 1) / 2) < 0.5 + 1e-9


@FUZZ
@given(st.integers(0, 2**31 - 1), st.integers(0, 999_999_999))
def test_stamps_round_trip_to_the_nanosecond(sec, nanosec):
    t = dec.stamp_to_sec(cv.sec_to_stamp(sec + nanosec * 1e-9))
    back = cv.sec_to_stamp(t)
    assert abs((back.sec - sec) * 1_000_000_000 + back.nanosec - nanosec) <= 256  # float64 resolution at 2^31 s


@FUZZ
@given(st.integers(0, 60), st.booleans(), st.data())
def test_match_clouds_round_trip(n, with_xyz, data):
    f32 = st.floats(-1e4, 1e4, allow_nan=False, width=32)
    p0, p1 = (data.draw(arrays(np.float32, (n, 2), elements=f32)) for _ in range(2))
    scores = data.draw(arrays(np.float32, (n,), elements=st.floats(0, 1, width=32)))
    ids = data.draw(arrays(np.int64, (n,), elements=st.integers(0, 2**32 - 1)))
    xyz = data.draw(arrays(np.float32, (n, 3), elements=st.one_of(f32, st.just(np.nan)))) if with_xyz else None
    pts = cv.cloud_to_numpy(cv.matches_cloud(p0, p1, scores, ids, Header(frame_id="cam"), xyz))
    np.testing.assert_array_equal(pts["u0"], p0[:, 0])
    np.testing.assert_array_equal(pts["v1"], p1[:, 1])
    np.testing.assert_array_equal(pts["track_id"], ids.astype(np.uint32))
    if with_xyz:
        np.testing.assert_array_equal(pts["z"], xyz[:, 2])


@st.composite
def arbitrary_clouds(draw):
    fields = []
    for i in range(draw(st.integers(0, 4))):
        fields.append(PointField(name=f"f{i}", offset=draw(st.integers(0, 40)),
                                 datatype=draw(st.integers(0, 9)), count=draw(st.integers(0, 3))))
    msg = PointCloud2(height=draw(st.integers(0, 4)), width=draw(st.integers(0, 20)), fields=fields,
                      is_bigendian=draw(st.booleans()), point_step=draw(st.integers(0, 48)),
                      row_step=draw(st.integers(0, 600)))
    msg.data = draw(st.binary(max_size=1200))
    return msg


@FUZZ
@given(arbitrary_clouds())
def test_arbitrary_clouds_read_or_fail_cleanly(msg):
    out = decodes_cleanly(cv.cloud_to_numpy, msg)
    if out is not None:
        assert len(out) == msg.width * msg.height


@FUZZ
@given(arrays(np.float64, 4, elements=st.floats(-1, 1)), arrays(np.float64, 3, elements=st.floats(-100, 100)))
def test_transforms_round_trip_through_quaternions(q, t):
    assume(np.linalg.norm(q) > 1e-3)
    T = lie.transform_from_xyzq([*t, *q])
    back = lie.transform_from_xyzq([*T[:3, 3], *lie.quat_from_matrix(T[:3, :3])])
    np.testing.assert_allclose(back, T, atol=1e-9)
    assert abs(np.linalg.det(T[:3, :3]) - 1) < 1e-9
