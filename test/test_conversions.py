"""Message <-> numpy conversions and the node's message builders, without a running node."""
import struct

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages (rclpy wheels) not installed")

from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from lightglue_ros.core import lie  # noqa: E402
from lightglue_ros.eval import viz  # noqa: E402
from lightglue_ros.geometry import frames  # noqa: E402
from lightglue_ros.geometry import resize  # noqa: E402
from lightglue_ros.io import msg_decode as dec  # noqa: E402
from lightglue_ros.ros import msgs as cv  # noqa: E402
from lightglue_ros.core.types import Camera  # noqa: E402

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (7, 5, 3), dtype=np.uint8)
MONO8 = RNG.integers(0, 256, (7, 5), dtype=np.uint8)
MONO16 = RNG.integers(0, 65536, (7, 5), dtype=np.uint16)


def raw_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """An Image built by hand (rows padded by ``pad`` bytes), independent of numpy_to_image."""
    dt = pixels.dtype.newbyteorder(">" if bigendian else "<")
    rows = pixels.astype(dt).reshape(pixels.shape[0], -1).view(np.uint8)
    rows = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=int(bigendian),
                step=rows.shape[1])
    msg.data = rows.tobytes()
    return msg


# ------------------------------------------------------------------------------------------------ images
@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding,stored", [
    ("rgb8", RGB), ("bgr8", RGB[..., ::-1]),
    ("rgba8", np.concatenate([RGB, np.full((7, 5, 1), 9, np.uint8)], 2)),
    ("bgra8", np.concatenate([RGB[..., ::-1], np.full((7, 5, 1), 9, np.uint8)], 2)),
])
def test_colour_encodings_decode_to_rgb(encoding, stored, pad):
    out = dec.image_to_numpy(raw_image(stored, encoding, pad))
    assert out.dtype == np.uint8 and out.shape == (7, 5, 3)
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding,pixels", [("mono8", MONO8), ("mono16", MONO16)])
def test_mono_encodings(encoding, pixels, bigendian):
    out = dec.image_to_numpy(raw_image(pixels, encoding, pad=2, bigendian=bigendian))
    assert out.dtype == pixels.dtype
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("encoding", dec.IMAGE_ENCODINGS)
def test_every_image_encoding_round_trips(encoding):
    enc = dec.ENCODINGS[encoding]
    pixels = RGB if enc.channels > 1 else MONO16 if enc.dtype == "u2" else MONO8
    msg = cv.numpy_to_image(pixels, encoding, Header(frame_id="cam"))
    assert msg.encoding == encoding and msg.header.frame_id == "cam" and msg.step >= msg.width
    np.testing.assert_array_equal(dec.image_to_numpy(msg), pixels)


@pytest.mark.parametrize("bigendian", [False, True])
def test_depth_16uc1_millimetres_and_32fc1_metres(bigendian):
    mm = np.array([[0, 1000, 2500], [65535, 1, 400]], np.uint16)
    m16 = dec.depth_to_numpy(raw_image(mm, "16UC1", pad=1, bigendian=bigendian))
    assert m16.dtype == np.float32
    np.testing.assert_allclose(m16, mm.astype(np.float64) / 1000.0, rtol=1e-6)
    metres = np.array([[0.0, np.nan, 1.25], [3.5, 19.0, 0.1]], np.float32)
    m32 = dec.depth_to_numpy(raw_image(metres, "32FC1", pad=4, bigendian=bigendian))
    np.testing.assert_array_equal(m32, metres)
    np.testing.assert_array_equal(dec.depth_to_numpy(cv.numpy_to_image(metres, "32FC1")), metres)


def test_mask_is_true_where_non_zero():
    m = np.array([[0, 1, 255], [0, 0, 7]], np.uint8)
    np.testing.assert_array_equal(dec.mask_to_numpy(raw_image(m, "mono8")), m != 0)


@pytest.mark.parametrize("mutate,reason", [
    (lambda m: setattr(m, "step", m.width * 3 - 1), "bad_step"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "short_data"),
    (lambda m: setattr(m, "encoding", "yuv422"), "unknown_encoding"),
    (lambda m: setattr(m, "encoding", ""), "unknown_encoding"),
    (lambda m: (setattr(m, "width", 0), setattr(m, "step", 0), setattr(m, "data", b"")), "empty_image"),
    (lambda m: (setattr(m, "height", 0), setattr(m, "data", b"")), "empty_image"),
])
def test_malformed_images_raise_typed_errors(mutate, reason):
    msg = raw_image(RGB, "rgb8")
    mutate(msg)
    with pytest.raises(dec.ConversionError) as err:
        dec.image_to_numpy(msg)
    assert err.value.reason == reason
    assert isinstance(err.value, ValueError) and reason in str(err.value)


def test_depth_and_mask_reject_image_encodings():
    with pytest.raises(dec.ConversionError, match="unknown_encoding"):
        dec.depth_to_numpy(raw_image(RGB, "rgb8"))
    with pytest.raises(dec.ConversionError, match="unknown_encoding"):
        dec.mask_to_numpy(raw_image(MONO16, "mono16"))
    with pytest.raises(dec.ConversionError, match="short_data"):
        msg = raw_image(MONO16, "16UC1")
        msg.data = bytes(msg.data)[: msg.step * 3]
        dec.depth_to_numpy(msg)


def test_compressed_png_round_trips_and_garbage_fails():
    for pixels in (RGB, MONO8):
        msg = cv.numpy_to_compressed(pixels, "png")
        np.testing.assert_array_equal(dec.compressed_to_numpy(msg), pixels)
    jpeg = dec.compressed_to_numpy(cv.numpy_to_compressed(np.full((16, 16, 3), (200, 30, 60), np.uint8)))
    assert np.abs(jpeg.astype(int) - (200, 30, 60)).max() < 12  # RGB order survives JPEG
    bad = CompressedImage(format="jpeg")
    bad.data = b"not an image at all"
    with pytest.raises(dec.ConversionError, match="decode_failed"):
        dec.compressed_to_numpy(bad)
    with pytest.raises(dec.ConversionError, match="empty_image"):
        dec.compressed_to_numpy(CompressedImage(format="jpeg"))


# ------------------------------------------------------------------------------------------------ camera
def test_camera_info_round_trip_and_validation():
    cam = Camera(640, 480, np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]]),
                 np.array([0.1, -0.05, 0.001, 0.002, 0.0]), "plumb_bob")
    back = dec.camera_from_msg(cv.camera_info_msg(cam))
    assert (back.width, back.height, back.model) == (640, 480, "plumb_bob")
    np.testing.assert_allclose(back.K, cam.K)
    np.testing.assert_allclose(back.D, cam.D)
    bad = cv.camera_info_msg(cam)
    bad.k = [0.0] * 9
    with pytest.raises(dec.ConversionError, match="bad_camera_info"):
        dec.camera_from_msg(bad)
    with pytest.raises(dec.ConversionError, match="bad_camera_info"):
        dec.camera_from_msg(CameraInfo())


def test_limit_size_scales_intrinsics_with_the_image():
    cam = Camera.pinhole(640, 480, 500.0, 500.0, 319.5, 239.5)
    image = np.zeros((480, 640, 3), np.uint8)
    depth = np.ones((480, 640), np.float32)
    out = resize.limit_size(image, cam, depth, np.zeros((480, 640), bool), 320)
    assert out.scale == pytest.approx(0.5) and out.image.shape == (240, 320, 3)
    assert out.depth.shape == (240, 320) and out.mask.shape == (240, 320) and out.mask.dtype == bool
    assert (out.camera.width, out.camera.height) == (320, 240)
    X = np.array([0.3, -0.2, 2.0])  # the same 3-D point lands on the scaled pixel
    uv_big = (cam.K @ X)[:2] / X[2]
    uv_small = (out.camera.K @ X)[:2] / X[2]
    np.testing.assert_allclose((uv_big + 0.5) * 0.5 - 0.5, uv_small)
    np.testing.assert_allclose(resize.unscale_points(uv_small[None], out.scale)[0], uv_big, rtol=1e-6)
    assert resize.limit_size(image, cam, None, None, 0).scale == 1.0
    assert resize.limit_size(image, cam, None, None, 640).image is image


def test_stamps_round_trip_exactly():
    for t in (0.0, 1.5, 1700000000.123456789, 12.999999999):
        st = cv.sec_to_stamp(t)
        assert 0 <= st.nanosec < 1_000_000_000
        assert dec.stamp_to_sec(st) == pytest.approx(t, abs=2e-9)


# ------------------------------------------------------------------------------------------------ rotations and frames
def random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    return lie.matrix_from_quat(q)


def test_quaternion_round_trip():
    rng = np.random.default_rng(1)
    for R in [np.eye(3), np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])] + \
             [random_rotation(rng) for _ in range(50)]:
        q = lie.quat_from_matrix(R)
        assert q[3] >= 0 and np.linalg.norm(q) == pytest.approx(1.0)
        np.testing.assert_allclose(lie.matrix_from_quat(q), R, atol=1e-12)


def test_optical_to_body_default_follows_rep103():
    T = lie.transform_from_xyzq(frames.OPTICAL_TO_BODY_XYZQ)
    np.testing.assert_allclose(T[:3, :3] @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # optical z forward -> base x
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, -1, 0], atol=1e-12)  # optical x right -> base -y
    np.testing.assert_allclose(T[:3, :3] @ [0, 1, 0], [0, 0, -1], atol=1e-12)  # optical y down -> base -z
    with pytest.raises(ValueError):
        lie.transform_from_xyzq([0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        lie.transform_from_xyzq([0, 0, 0, 1])


def test_camera_moving_forward_is_base_moving_along_x():
    T_base_cam = lie.transform_from_xyzq(frames.OPTICAL_TO_BODY_XYZQ)
    T_world_cam = np.eye(4)
    T_world_cam[:3, 3] = [0.0, 0.0, 2.0]  # two metres along the optical axis
    T_odom_base = frames.camera_pose_to_base(T_world_cam, T_base_cam)
    np.testing.assert_allclose(T_odom_base[:3, 3], [2.0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(T_odom_base[:3, :3], np.eye(3), atol=1e-12)
    # Yaw left in the base frame = rotation about optical -y.
    c, s = np.cos(0.3), np.sin(0.3)
    T_world_cam[:3, :3] = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])  # about optical -y by 0.3 rad
    R = frames.camera_pose_to_base(T_world_cam, T_base_cam)[:3, :3]
    np.testing.assert_allclose(R, [[c, -s, 0], [s, c, 0], [0, 0, 1]], atol=1e-12)
    # With a lever arm, the identity camera pose is still the identity base pose (odom = first base pose).
    T_base_cam2 = T_base_cam.copy()
    T_base_cam2[:3, 3] = [0.2, 0.0, 0.5]
    np.testing.assert_allclose(frames.camera_pose_to_base(np.eye(4), T_base_cam2), np.eye(4), atol=1e-12)


def _perturb(T: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Position + small fixed-axis rotation (world frame) perturbation, the covariance convention."""
    from scipy.spatial.transform import Rotation

    out = T.copy()
    out[:3, :3] = Rotation.from_rotvec(delta[3:]).as_matrix() @ T[:3, :3]
    out[:3, 3] = T[:3, 3] + delta[:3]
    return out


def _error(T: np.ndarray, T_ref: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return np.concatenate([T[:3, 3] - T_ref[:3, 3], Rotation.from_matrix(T[:3, :3] @ T_ref[:3, :3].T).as_rotvec()])


def test_pose_covariance_rotates_with_the_extrinsic():
    T_base_cam = lie.transform_from_xyzq(frames.OPTICAL_TO_BODY_XYZQ)
    cov = np.diag([1e-4, 2e-4, 9e-2, 1e-6, 3e-6, 5e-6])  # uncertain along the optical axis (z)
    out = frames.pose_covariance_to_base(cov, T_base_cam, frames.camera_pose_to_base(np.eye(4), T_base_cam))
    np.testing.assert_allclose(np.diag(out), [9e-2, 1e-4, 2e-4, 5e-6, 1e-6, 3e-6])  # ... = along base x
    assert np.all(np.linalg.eigvalsh(out) > 0)


def test_pose_covariance_is_the_first_order_propagation_with_lever_arm():
    rng = np.random.default_rng(3)
    T_base_cam = lie.transform_from_xyzq([0.3, -0.1, 0.6, *lie.quat_from_matrix(random_rotation(rng))])
    T_world_cam = np.eye(4)
    T_world_cam[:3, :3] = random_rotation(rng)
    T_world_cam[:3, 3] = [1.0, -2.0, 3.0]
    A = rng.normal(size=(6, 6))
    cov = A @ A.T + 1e-3 * np.eye(6)
    T_ob = frames.camera_pose_to_base(T_world_cam, T_base_cam)
    # Numerical Jacobian of (base error in odom) w.r.t. (camera error in world), central differences.
    eps = 1e-6
    J = np.zeros((6, 6))
    for k in range(6):
        d = np.zeros(6)
        d[k] = eps
        plus = _error(frames.camera_pose_to_base(_perturb(T_world_cam, d), T_base_cam), T_ob)
        minus = _error(frames.camera_pose_to_base(_perturb(T_world_cam, -d), T_base_cam), T_ob)
        J[:, k] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(frames.pose_covariance_to_base(cov, T_base_cam, T_ob), J @ cov @ J.T,
                               rtol=1e-6, atol=1e-6)


def test_twist_follows_the_adjoint():
    T_base_cam = lie.transform_from_xyzq(frames.OPTICAL_TO_BODY_XYZQ)
    v, cov = frames.twist_to_base(np.array([0, 0, 1.5, 0, -0.2, 0]), np.diag([1, 2, 3, 4, 5, 6.0]), T_base_cam)
    np.testing.assert_allclose(v, [1.5, 0, 0, 0, 0, 0.2], atol=1e-12)  # forward, yawing left
    np.testing.assert_allclose(np.diag(cov), [3, 1, 2, 6, 4, 5])
    # A lever arm turns rotation into linear velocity of the base: v_b = t x w.
    T = np.eye(4)
    T[:3, 3] = [1.0, 0, 0]
    v, _ = frames.twist_to_base(np.array([0, 0, 0, 0, 0, 1.0]), np.eye(6), T)
    np.testing.assert_allclose(v, [0, -1.0, 0, 0, 0, 1.0], atol=1e-12)


def test_odometry_builder_frames_and_covariance():
    T = np.eye(4)
    T[:3, :3] = lie.matrix_from_quat([0.1, 0.2, 0.3, 0.9])
    T[:3, 3] = [1, 2, 3]
    pose_cov = np.diag(np.arange(1, 7, dtype=float))
    pose_cov[0, 5] = pose_cov[5, 0] = 0.5
    twist_cov = np.eye(6) * 0.01
    stamp = Time(sec=12, nanosec=345)
    msg = cv.odometry_msg(T, pose_cov, np.arange(6.0), twist_cov, stamp, "odom", "base_link")
    assert msg.header.frame_id == "odom" and msg.child_frame_id == "base_link"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)
    np.testing.assert_allclose(cv.pose_to_matrix(msg.pose.pose), T, atol=1e-12)
    np.testing.assert_array_equal(np.reshape(msg.pose.covariance, (6, 6)), pose_cov)  # row-major
    assert msg.pose.covariance[5] == 0.5 and msg.pose.covariance[30] == 0.5
    t = msg.twist.twist
    assert [t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z] == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(np.reshape(msg.twist.covariance, (6, 6)), twist_cov)


def test_transform_stamped_builder():
    T = np.eye(4)
    T[:3, :3] = lie.matrix_from_quat([0.0, 0.0, np.sin(0.25), np.cos(0.25)])
    T[:3, 3] = [0.5, -1.0, 0.25]
    msg = cv.transform_stamped(T, Time(sec=3, nanosec=7), "odom", "base_link")
    assert (msg.header.frame_id, msg.child_frame_id) == ("odom", "base_link")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (3, 7)
    r = msg.transform.rotation
    np.testing.assert_allclose([r.x, r.y, r.z, r.w], [0, 0, np.sin(0.25), np.cos(0.25)], atol=1e-12)
    np.testing.assert_allclose(cv.transform_to_matrix(msg.transform), T, atol=1e-12)


# ------------------------------------------------------------------------------------------------ match cloud
def _cloud_inputs(n=5):
    rng = np.random.default_rng(2)
    p0 = rng.uniform(0, 640, (n, 2)).astype(np.float32)
    p1 = rng.uniform(0, 640, (n, 2)).astype(np.float32)
    return p0, p1, rng.uniform(0, 1, n).astype(np.float32), np.arange(100, 100 + n)


def test_cloud_layout_is_the_documented_one():
    p0, p1, s, ids = _cloud_inputs()
    xyz = np.array([[0.1, 0.2, 1.0]] * 4 + [[np.nan] * 3], np.float32)
    msg = cv.matches_cloud(p0, p1, s, ids, Header(frame_id="cam"), xyz=xyz)
    layout = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert layout == [("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1),
                      ("track_id", 12, PointField.UINT32, 1), ("u0", 16, PointField.FLOAT32, 1),
                      ("v0", 20, PointField.FLOAT32, 1), ("u1", 24, PointField.FLOAT32, 1),
                      ("v1", 28, PointField.FLOAT32, 1), ("score", 32, PointField.FLOAT32, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 5, 36, 180)
    assert not msg.is_bigendian and not msg.is_dense and len(msg.data) == 180
    # Decode with struct from the documented layout, the way read_points walks point_step/offsets.
    for i in range(5):
        x, y, z, tid, u0, v0, u1, v1, sc = struct.unpack_from("<fffIfffff", bytes(msg.data), i * msg.point_step)
        assert tid == ids[i] and (u0, v0, u1, v1) == (p0[i, 0], p0[i, 1], p1[i, 0], p1[i, 1]) and sc == s[i]
        if i < 4:
            assert (x, y, z) == tuple(xyz[i])
        else:
            assert np.isnan([x, y, z]).all()


def test_cloud_without_depth_has_no_xyz_and_decodes():
    p0, p1, s, ids = _cloud_inputs(3)
    msg = cv.matches_cloud(p0, p1, s, ids, Header(frame_id="cam"))
    assert [f.name for f in msg.fields] == ["track_id", "u0", "v0", "u1", "v1", "score"]
    assert msg.point_step == 24 and msg.is_dense
    back = cv.cloud_to_numpy(msg)
    np.testing.assert_array_equal(back["track_id"], ids)
    np.testing.assert_array_equal(np.stack([back["u1"], back["v1"]], 1), p1)
    empty = cv.matches_cloud(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), np.zeros(0), Header())
    assert empty.width == 0 and len(empty.data) == 0 and len(cv.cloud_to_numpy(empty)) == 0


def test_draw_matches_shape_and_colour():
    a = np.zeros((40, 60, 3), np.uint8)
    b = np.zeros((40, 60), np.uint8)
    img = viz.draw_matches(a, b, np.array([[10.0, 10]]), np.array([[20.0, 30]]), np.array([1.0]), "stop 3")
    top, bottom = viz.CAPTION_BAND, viz.CAPTION_BAND + 40
    assert img.shape == (top + 40 + viz.LEGEND_BAND, 120, 3) and img.dtype == np.uint8
    assert img[top:bottom].sum() > 0 and img[:top].sum() > 0 and img[bottom:].sum() > 0  # match, caption, legend
    green = (img[top:bottom, :, 1] > 200) & (img[top:bottom, :, 0] < 60)  # score 1: drawn in green
    assert green[10, 10] and green[30, 60 + 20]  # both endpoints marked


def test_draw_matches_draws_a_spread_subset():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    p1 = np.concatenate([rng.uniform(0, 40, (400, 2)), rng.uniform(0, [320, 240], (100, 2))])  # a dense corner
    p0 = p1 + 3.0
    scores = rng.uniform(0, 1, len(p1))
    chosen = viz.spread_subset(p1, scores, 60, (320, 240))
    assert len(chosen) == 60 and len(set(chosen.tolist())) == 60
    assert np.mean(np.all(p1[chosen] < 40, axis=1)) < 0.25  # the crowded corner does not take the picture
    assert len(viz.spread_subset(p1[:10], scores[:10], 60, (320, 240))) == 10  # few matches: all of them
    canvas = viz.draw_matches(image, image, p0, p1, scores, "500 matches")
    assert canvas.shape == (viz.CAPTION_BAND + 240 + viz.LEGEND_BAND, 640, 3)
    backdrop = canvas[viz.CAPTION_BAND:viz.CAPTION_BAND + 240, :320]
    grey = (backdrop[..., 0] == backdrop[..., 1]) & (backdrop[..., 1] == backdrop[..., 2])  # dimmed grey images
    assert grey.mean() > 0.5 and backdrop[grey].max() <= 40 + 0.45 * 255 + 1


def test_cloud_reads_back_with_sensor_msgs_py():
    pc2 = pytest.importorskip("sensor_msgs_py.point_cloud2", reason="sensor_msgs_py needs a ROS 2 install")
    p0, p1, s, ids = _cloud_inputs(4)
    xyz = np.array([[0.1, 0.2, 1.0]] * 4, np.float32)
    msg = cv.matches_cloud(p0, p1, s, ids, Header(frame_id="cam"), xyz=xyz)
    rows = list(pc2.read_points(msg, field_names=("x", "y", "z", "track_id", "u1", "v1", "score")))
    assert len(rows) == 4
    for i, r in enumerate(rows):
        assert tuple(r)[3] == ids[i] and np.allclose(tuple(r)[4:6], p1[i]) and np.isclose(tuple(r)[6], s[i])


# ------------------------------------------------------------------------------------------------ node vs bag decoding
def _as_bag_message(msg):
    """The same message as `rosbags` gives it to the bag reader: the rclpy message's CDR bytes, deserialised."""
    from rclpy.serialization import serialize_message

    rosbags = pytest.importorskip("rosbags.typesys", reason="rosbags not installed")
    store = rosbags.get_typestore(rosbags.Stores.ROS2_HUMBLE)
    name = f"sensor_msgs/msg/{type(msg).__name__}"
    return store.deserialize_cdr(bytes(serialize_message(msg)), name)


def _decoded(fn, msg):
    try:
        return fn(msg)
    except dec.ConversionError as exc:
        return exc.reason


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, Camera) and isinstance(b, Camera):
        return ((a.width, a.height, a.model) == (b.width, b.height, b.model) and np.array_equal(a.K, b.K)
                and np.array_equal(a.D, b.D))
    return a == b


def _images():
    metres = np.array([[0.0, np.nan, 1.25], [3.5, 19.0, 0.1]], np.float32)
    mm = np.array([[0, 1000, 2500], [65535, 1, 400]], np.uint16)
    yield raw_image(RGB, "rgb8", pad=3)
    yield raw_image(RGB[..., ::-1], "bgr8")
    yield raw_image(np.concatenate([RGB[..., ::-1], np.full((7, 5, 1), 9, np.uint8)], 2), "bgra8", pad=1)
    yield raw_image(MONO8, "8UC1", pad=2)
    yield raw_image(MONO16, "mono16", bigendian=True)
    yield raw_image(mm, "16UC1", pad=1, bigendian=True)
    yield raw_image(metres, "32FC1", pad=4)
    short = raw_image(RGB, "rgb8")
    short.data = bytes(short.data)[:-1]
    yield short
    yield raw_image(RGB[..., :2].copy(), "yuv422")


@pytest.mark.parametrize("fn", [dec.image_to_numpy, dec.depth_to_numpy, dec.mask_to_numpy])
def test_a_bag_message_decodes_as_the_live_message(fn):
    """The node (rclpy message) and the bag reader (rosbags message) read the same bytes the same way."""
    for msg in _images():
        live, bag = _decoded(fn, msg), _decoded(fn, _as_bag_message(msg))
        assert _same(live, bag), (msg.encoding, live, bag)


def test_compressed_and_camera_info_decode_alike_from_both_sources():
    for msg in (cv.numpy_to_compressed(RGB, "png"), cv.numpy_to_compressed(MONO8, "jpeg"), CompressedImage()):
        live, bag = (_decoded(dec.compressed_to_numpy, m) for m in (msg, _as_bag_message(msg)))
        assert _same(live, bag)
    cam = Camera(640, 480, np.array([[500.0, 0.5, 320], [0, 510, 240], [0, 0, 1]]),
                 np.array([0.1, -0.05, 0.001, 0.002, 0.0]), "plumb_bob")
    infos = [cv.camera_info_msg(cam), cv.camera_info_msg(Camera.pinhole(64, 48, 50.0, 50.0, 31.5, 23.5)),
             CameraInfo(), CameraInfo(width=64, height=48, k=[50.0, 0, 31.5, 0, 50.0, 23.5, 0, 0, 1],
                                      distortion_model="kannala_brandt_x", d=[0.0] * 4)]
    for msg in infos:
        live, bag = (_decoded(dec.camera_from_msg, m) for m in (msg, _as_bag_message(msg)))
        assert _same(live, bag), (live, bag)
    assert _decoded(dec.camera_from_msg, infos[0]).K[0, 1] == 0.5  # the full K, skew included


def test_camera_info_rules_shared_by_node_and_bags():
    K = [50.0, 0, 31.5, 0, 50.0, 23.5, 0, 0, 1]
    zero = dec.camera_from_msg(CameraInfo(width=64, height=48, k=K, distortion_model="plumb_bob", d=[0.0] * 5))
    assert zero.model == "none" and zero.D.size == 0  # all-zero D: nothing to undistort
    assert dec.camera_from_msg(CameraInfo(width=64, height=48, k=K, distortion_model="plumb_bob")).model == "none"
    fisheye = dec.camera_from_msg(CameraInfo(width=64, height=48, k=K, distortion_model="Kannala-Brandt",
                                             d=[0.1, 0.01, 0.0, 0.0]))
    assert fisheye.model == "equidistant"  # Kalibr's spelling, as in calibration files
    for model, d, reason in (("kannala_brandt_x", [0.0] * 4, "bad_camera_info_unknown_model"),
                             ("", [0.1, 0, 0, 0, 0], "bad_camera_info_distortion"),
                             ("plumb_bob", [0.1, float("nan"), 0, 0, 0], "bad_camera_info_distortion"),
                             ("equidistant", [0.1] * 5, "bad_camera_info_distortion")):
        with pytest.raises(dec.ConversionError) as err:
            dec.camera_from_msg(CameraInfo(width=64, height=48, k=K, distortion_model=model, d=d))
        assert err.value.reason == reason and isinstance(err.value.reason, dec.ConversionReason)


def test_compressed_depth_formats():
    import cv2

    mm = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 100) + 300
    png = cv2.imencode(".png", mm)[1].tobytes()
    header = struct.pack("<iff", 0, 0.0, 0.0)
    for fmt, data in (("16UC1; compressedDepth png", header + png), ("16UC1; compressedDepth", header + png),
                      ("png", png)):
        msg = CompressedImage(format=fmt)
        msg.data = data
        np.testing.assert_allclose(dec.compressed_depth_to_numpy(msg), mm * 1e-3, rtol=1e-6)
    # 32FC1: compressed_depth_image_transport stores quantised inverse depth, inv = A / depth + B.
    depth = np.full((6, 8), 2.0, np.float32)
    depth[0, :4] = [0.5, 1.0, 4.0, 9.0]
    quant, max_depth = 100.0, 10.0
    a = quant * (quant + 1.0)
    b = 1.0 - a / max_depth
    inverse = np.round(a / depth + b).astype(np.uint16)
    inverse[5, 7] = 0  # no depth
    msg = CompressedImage(format="32FC1; compressedDepth png")
    msg.data = struct.pack("<iff", 0, a, b) + cv2.imencode(".png", inverse)[1].tobytes()
    out = dec.compressed_depth_to_numpy(msg)
    assert out.dtype == np.float32 and np.isnan(out[5, 7])
    np.testing.assert_allclose(out[:5], depth[:5], rtol=2e-3)
    rvl = CompressedImage(format="16UC1; compressedDepth rvl")
    rvl.data = header + b"\0" * 20
    with pytest.raises(dec.ConversionError, match="unsupported_format"):
        dec.compressed_depth_to_numpy(rvl)
    colour = CompressedImage(format="png")
    colour.data = cv2.imencode(".png", RGB)[1].tobytes()
    with pytest.raises(dec.ConversionError, match="unsupported_pixel_type"):
        dec.compressed_depth_to_numpy(colour)
