"""Message <-> numpy conversions and the node's message builders, without a running node."""
import struct

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages (rclpy wheels) not installed")

from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

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
    out = cv.image_to_numpy(raw_image(stored, encoding, pad))
    assert out.dtype == np.uint8 and out.shape == (7, 5, 3)
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding,pixels", [("mono8", MONO8), ("mono16", MONO16)])
def test_mono_encodings(encoding, pixels, bigendian):
    out = cv.image_to_numpy(raw_image(pixels, encoding, pad=2, bigendian=bigendian))
    assert out.dtype == pixels.dtype
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("encoding", cv.IMAGE_ENCODINGS)
def test_every_image_encoding_round_trips(encoding):
    pixels = MONO16 if encoding == "mono16" else MONO8 if encoding == "mono8" else RGB
    msg = cv.numpy_to_image(pixels, encoding, Header(frame_id="cam"))
    assert msg.encoding == encoding and msg.header.frame_id == "cam" and msg.step >= msg.width
    np.testing.assert_array_equal(cv.image_to_numpy(msg), pixels)


@pytest.mark.parametrize("bigendian", [False, True])
def test_depth_16uc1_millimetres_and_32fc1_metres(bigendian):
    mm = np.array([[0, 1000, 2500], [65535, 1, 400]], np.uint16)
    m16 = cv.depth_to_numpy(raw_image(mm, "16UC1", pad=1, bigendian=bigendian))
    assert m16.dtype == np.float32
    np.testing.assert_allclose(m16, mm.astype(np.float64) / 1000.0, rtol=1e-6)
    metres = np.array([[0.0, np.nan, 1.25], [3.5, 19.0, 0.1]], np.float32)
    m32 = cv.depth_to_numpy(raw_image(metres, "32FC1", pad=4, bigendian=bigendian))
    np.testing.assert_array_equal(m32, metres)
    np.testing.assert_array_equal(cv.depth_to_numpy(cv.numpy_to_image(metres, "32FC1")), metres)


def test_mask_is_true_where_non_zero():
    m = np.array([[0, 1, 255], [0, 0, 7]], np.uint8)
    np.testing.assert_array_equal(cv.mask_to_numpy(raw_image(m, "mono8")), m != 0)


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
    with pytest.raises(cv.ConversionError) as err:
        cv.image_to_numpy(msg)
    assert err.value.reason == reason
    assert isinstance(err.value, ValueError) and reason in str(err.value)


def test_depth_and_mask_reject_image_encodings():
    with pytest.raises(cv.ConversionError, match="unknown_encoding"):
        cv.depth_to_numpy(raw_image(RGB, "rgb8"))
    with pytest.raises(cv.ConversionError, match="unknown_encoding"):
        cv.mask_to_numpy(raw_image(MONO16, "mono16"))
    with pytest.raises(cv.ConversionError, match="short_data"):
        msg = raw_image(MONO16, "16UC1")
        msg.data = bytes(msg.data)[: msg.step * 3]
        cv.depth_to_numpy(msg)


def test_compressed_png_round_trips_and_garbage_fails():
    for pixels in (RGB, MONO8):
        msg = cv.numpy_to_compressed(pixels, "png")
        np.testing.assert_array_equal(cv.compressed_to_numpy(msg), pixels)
    jpeg = cv.compressed_to_numpy(cv.numpy_to_compressed(np.full((16, 16, 3), (200, 30, 60), np.uint8)))
    assert np.abs(jpeg.astype(int) - (200, 30, 60)).max() < 12  # RGB order survives JPEG
    bad = CompressedImage(format="jpeg")
    bad.data = b"not an image at all"
    with pytest.raises(cv.ConversionError, match="decode_failed"):
        cv.compressed_to_numpy(bad)
    with pytest.raises(cv.ConversionError, match="empty_image"):
        cv.compressed_to_numpy(CompressedImage(format="jpeg"))


# ------------------------------------------------------------------------------------------------ camera
def test_camera_info_round_trip_and_validation():
    cam = Camera(640, 480, np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]]),
                 np.array([0.1, -0.05, 0.001, 0.002, 0.0]), "plumb_bob")
    back = cv.camera_from_msg(cv.camera_info_msg(cam))
    assert (back.width, back.height, back.model) == (640, 480, "plumb_bob")
    np.testing.assert_allclose(back.K, cam.K)
    np.testing.assert_allclose(back.D, cam.D)
    bad = cv.camera_info_msg(cam)
    bad.k = [0.0] * 9
    with pytest.raises(cv.ConversionError, match="bad_camera_info"):
        cv.camera_from_msg(bad)
    with pytest.raises(cv.ConversionError, match="bad_camera_info"):
        cv.camera_from_msg(CameraInfo())


def test_limit_size_scales_intrinsics_with_the_image():
    cam = Camera.pinhole(640, 480, 500.0, 500.0, 319.5, 239.5)
    image = np.zeros((480, 640, 3), np.uint8)
    depth = np.ones((480, 640), np.float32)
    out = cv.limit_size(image, cam, depth, np.zeros((480, 640), bool), 320)
    assert out.scale == pytest.approx(0.5) and out.image.shape == (240, 320, 3)
    assert out.depth.shape == (240, 320) and out.mask.shape == (240, 320) and out.mask.dtype == bool
    assert (out.camera.width, out.camera.height) == (320, 240)
    X = np.array([0.3, -0.2, 2.0])  # the same 3-D point lands on the scaled pixel
    uv_big = (cam.K @ X)[:2] / X[2]
    uv_small = (out.camera.K @ X)[:2] / X[2]
    np.testing.assert_allclose((uv_big + 0.5) * 0.5 - 0.5, uv_small)
    np.testing.assert_allclose(cv.unscale_points(uv_small[None], out.scale)[0], uv_big, rtol=1e-6)
    assert cv.limit_size(image, cam, None, None, 0).scale == 1.0
    assert cv.limit_size(image, cam, None, None, 640).image is image


def test_stamps_round_trip_exactly():
    for t in (0.0, 1.5, 1700000000.123456789, 12.999999999):
        st = cv.sec_to_stamp(t)
        assert 0 <= st.nanosec < 1_000_000_000
        assert cv.stamp_to_sec(st) == pytest.approx(t, abs=2e-9)


# ------------------------------------------------------------------------------------------------ rotations and frames
def random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    return cv.matrix_from_quat(q)


def test_quaternion_round_trip():
    rng = np.random.default_rng(1)
    for R in [np.eye(3), np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])] + \
             [random_rotation(rng) for _ in range(50)]:
        q = cv.quat_from_matrix(R)
        assert q[3] >= 0 and np.linalg.norm(q) == pytest.approx(1.0)
        np.testing.assert_allclose(cv.matrix_from_quat(q), R, atol=1e-12)


def test_optical_to_body_default_follows_rep103():
    T = cv.transform_from_xyzq(cv.OPTICAL_TO_BODY_XYZQ)
    np.testing.assert_allclose(T[:3, :3] @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # optical z forward -> base x
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, -1, 0], atol=1e-12)  # optical x right -> base -y
    np.testing.assert_allclose(T[:3, :3] @ [0, 1, 0], [0, 0, -1], atol=1e-12)  # optical y down -> base -z
    with pytest.raises(ValueError):
        cv.transform_from_xyzq([0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        cv.transform_from_xyzq([0, 0, 0, 1])


def test_camera_moving_forward_is_base_moving_along_x():
    T_base_cam = cv.transform_from_xyzq(cv.OPTICAL_TO_BODY_XYZQ)
    T_world_cam = np.eye(4)
    T_world_cam[:3, 3] = [0.0, 0.0, 2.0]  # two metres along the optical axis
    T_odom_base = cv.camera_pose_to_base(T_world_cam, T_base_cam)
    np.testing.assert_allclose(T_odom_base[:3, 3], [2.0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(T_odom_base[:3, :3], np.eye(3), atol=1e-12)
    # Yaw left in the base frame = rotation about optical -y.
    c, s = np.cos(0.3), np.sin(0.3)
    T_world_cam[:3, :3] = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])  # about optical -y by 0.3 rad
    R = cv.camera_pose_to_base(T_world_cam, T_base_cam)[:3, :3]
    np.testing.assert_allclose(R, [[c, -s, 0], [s, c, 0], [0, 0, 1]], atol=1e-12)
    # With a lever arm, the identity camera pose is still the identity base pose (odom = first base pose).
    T_base_cam2 = T_base_cam.copy()
    T_base_cam2[:3, 3] = [0.2, 0.0, 0.5]
    np.testing.assert_allclose(cv.camera_pose_to_base(np.eye(4), T_base_cam2), np.eye(4), atol=1e-12)


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
    T_base_cam = cv.transform_from_xyzq(cv.OPTICAL_TO_BODY_XYZQ)
    cov = np.diag([1e-4, 2e-4, 9e-2, 1e-6, 3e-6, 5e-6])  # uncertain along the optical axis (z)
    out = cv.pose_covariance_to_base(cov, T_base_cam, cv.camera_pose_to_base(np.eye(4), T_base_cam))
    np.testing.assert_allclose(np.diag(out), [9e-2, 1e-4, 2e-4, 5e-6, 1e-6, 3e-6])  # ... = along base x
    assert np.all(np.linalg.eigvalsh(out) > 0)


def test_pose_covariance_is_the_first_order_propagation_with_lever_arm():
    rng = np.random.default_rng(3)
    T_base_cam = cv.transform_from_xyzq([0.3, -0.1, 0.6, *cv.quat_from_matrix(random_rotation(rng))])
    T_world_cam = np.eye(4)
    T_world_cam[:3, :3] = random_rotation(rng)
    T_world_cam[:3, 3] = [1.0, -2.0, 3.0]
    A = rng.normal(size=(6, 6))
    cov = A @ A.T + 1e-3 * np.eye(6)
    T_ob = cv.camera_pose_to_base(T_world_cam, T_base_cam)
    # Numerical Jacobian of (base error in odom) w.r.t. (camera error in world), central differences.
    eps = 1e-6
    J = np.zeros((6, 6))
    for k in range(6):
        d = np.zeros(6)
        d[k] = eps
        plus = _error(cv.camera_pose_to_base(_perturb(T_world_cam, d), T_base_cam), T_ob)
        minus = _error(cv.camera_pose_to_base(_perturb(T_world_cam, -d), T_base_cam), T_ob)
        J[:, k] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(cv.pose_covariance_to_base(cov, T_base_cam, T_ob), J @ cov @ J.T, rtol=1e-6, atol=1e-6)


def test_twist_follows_the_adjoint():
    T_base_cam = cv.transform_from_xyzq(cv.OPTICAL_TO_BODY_XYZQ)
    v, cov = cv.twist_to_base(np.array([0, 0, 1.5, 0, -0.2, 0]), np.diag([1, 2, 3, 4, 5, 6.0]), T_base_cam)
    np.testing.assert_allclose(v, [1.5, 0, 0, 0, 0, 0.2], atol=1e-12)  # forward, yawing left
    np.testing.assert_allclose(np.diag(cov), [3, 1, 2, 6, 4, 5])
    # A lever arm turns rotation into linear velocity of the base: v_b = t x w.
    T = np.eye(4)
    T[:3, 3] = [1.0, 0, 0]
    v, _ = cv.twist_to_base(np.array([0, 0, 0, 0, 0, 1.0]), np.eye(6), T)
    np.testing.assert_allclose(v, [0, -1.0, 0, 0, 0, 1.0], atol=1e-12)


def test_odometry_builder_frames_and_covariance():
    T = np.eye(4)
    T[:3, :3] = cv.matrix_from_quat([0.1, 0.2, 0.3, 0.9])
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
    T[:3, :3] = cv.matrix_from_quat([0.0, 0.0, np.sin(0.25), np.cos(0.25)])
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
    img = cv.draw_matches(a, b, np.array([[10.0, 10]]), np.array([[20.0, 30]]), np.array([1.0]), "stop 3")
    assert img.shape == (40 + 22, 120, 3) and img.dtype == np.uint8
    assert img[22:].sum() > 0 and img[:22].sum() > 0  # a line below, text above


def test_cloud_reads_back_with_sensor_msgs_py():
    pc2 = pytest.importorskip("sensor_msgs_py.point_cloud2", reason="sensor_msgs_py needs a ROS 2 install")
    p0, p1, s, ids = _cloud_inputs(4)
    xyz = np.array([[0.1, 0.2, 1.0]] * 4, np.float32)
    msg = cv.matches_cloud(p0, p1, s, ids, Header(frame_id="cam"), xyz=xyz)
    rows = list(pc2.read_points(msg, field_names=("x", "y", "z", "track_id", "u1", "v1", "score")))
    assert len(rows) == 4
    for i, r in enumerate(rows):
        assert tuple(r)[3] == ids[i] and np.allclose(tuple(r)[4:6], p1[i]) and np.isclose(tuple(r)[6], s[i])
