"""Dataset readers: the real shared sets load with the right calibration and ground truth; KITTI, TUM-with-depth,
EuRoC body ground truth, image folders and rosbag2 bags are built here from the synthetic scene and read back."""
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lightglue_ros.io.datasets import (DatasetError, FrameSequence, open_sequence, parse_intrinsics, parse_synthetic,
                                       poses_at, read_intrinsics, synthetic_sequence)
from lightglue_ros.io.msg_decode import compressed_depth_to_numpy, depth_to_numpy, image_to_numpy
from lightglue_ros.io.synthetic import SyntheticConfig
from lightglue_ros.core.types import DISTORTION_MODELS, Frame

W, H = 160, 120


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    """Six small synthetic frames with depth and exact poses: the content of every built dataset."""
    return list(synthetic_sequence(SyntheticConfig(frames=6, width=W, height=H, depth=True)))


def _bgr(img):
    return cv2.cvtColor(img, cv2.COLOR_RGB2BGR)


def _tum_line(t, T):
    q = Rotation.from_matrix(T[:3, :3]).as_quat()
    return f"{t:.6f} " + " ".join(f"{v:.9f}" for v in (*T[:3, 3], *q))


# ---------------------------------------------------------------------------------------------------- shared data
def test_tum_fr3_office(shared_data):
    folder = shared_data("tum_fr3_office")
    seq = open_sequence(str(folder))
    assert isinstance(seq, FrameSequence) and seq.kind == "tum" and len(seq) == 17
    cam = seq.camera
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height, cam.model) == (535.4, 539.2, 320.1, 247.6,
                                                                                  640, 480, "none")
    frames = list(seq)
    assert [f.index for f in frames] == list(range(17)) and not any(f.error for f in frames)
    assert frames[0].image.shape == (480, 640, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].gt_pose is None and all(f.gt_pose is not None for f in frames[1:])  # no GT for frame 0
    assert seq.has_gt and seq.metric_gt and len(seq.ground_truth()) == 16
    # second line of groundtruth_per_frame: 1341847981.726650 -0.5953 2.7163 1.7358 0.0136 0.8591 -0.5111 -0.0233
    assert frames[1].stamp == pytest.approx(1341847981.726650)
    np.testing.assert_allclose(frames[1].gt_pose[:3, 3], [-0.5953, 2.7163, 1.7358])
    q = Rotation.from_matrix(frames[1].gt_pose[:3, :3]).as_quat()
    np.testing.assert_allclose(np.abs(q @ [0.0136, 0.8591, -0.5111, -0.0233]), 1, atol=1e-4)
    assert len(open_sequence(str(folder), stride=4)) == 5 and len(open_sequence(str(folder), max_frames=3)) == 3
    with pytest.raises(DatasetError, match="depth"):
        open_sequence(str(folder), use_depth=True)


def test_euroc_v101_static(shared_data):
    root = shared_data("euroc_v101_static")
    seq = open_sequence(str(root))
    assert seq.kind == "euroc" and len(seq) == 95
    cam = seq.camera
    assert (cam.width, cam.height, cam.model) == (752, 480, "radtan") and cam.fx == pytest.approx(458.654)
    np.testing.assert_allclose(cam.D, [-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05])
    frames = list(seq)
    assert len(frames) == 95 and all(f.image is not None and f.image.shape == (480, 752) for f in frames)
    assert frames[0].stamp == pytest.approx(1403715273.262142976, abs=1e-6)
    assert all(f.gt_pose is not None for f in frames)
    np.testing.assert_allclose(frames[0].gt_pose[:3, 3], [0.863343, 2.246098, 0.924452])
    span = np.linalg.norm(frames[-1].gt_pose[:3, 3] - frames[0].gt_pose[:3, 3])
    assert span < 0.05  # the vehicle stands still
    # the same sequence from mav0/ ; the right camera via image_topic (cam1 GT = cam0 GT x the stereo extrinsic)
    assert len(open_sequence(str(root / "mav0"), max_frames=2)) == 2
    cam1 = open_sequence(str(root), image_topic="cam1", max_frames=1)
    f1 = next(iter(cam1))
    assert cam1.name.endswith("cam1") and 0.10 < np.linalg.norm(f1.gt_pose[:3, 3] - frames[0].gt_pose[:3, 3]) < 0.12


def test_slambook_rgbd_folder_with_depth(shared_data):
    folder = shared_data("slambook_rgbd")
    seq = open_sequence(str(folder), use_depth=True)
    assert seq.kind == "folder" and len(seq) == 5 and seq.has_depth and seq.has_gt
    assert (seq.camera.fx, seq.camera.cy) == (518.0, 253.5)
    frames = list(seq)
    for f in frames:
        assert f.depth.dtype == np.float32 and f.depth.shape == f.image.shape[:2] == (480, 640)
        valid = f.depth[f.depth > 0]
        assert valid.size > 0.5 * f.depth.size and 0.5 < np.median(valid) < 8  # metres, not millimetres
    np.testing.assert_allclose(frames[0].gt_pose[:3, 3], [-0.228993, 0.00645704, 0.0287837])
    assert [f.stamp for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert open_sequence(str(folder)).has_depth is False  # depth only when asked for


# ---------------------------------------------------------------------------------------------------- built layouts
def _write_kitti(root: Path, frames) -> Path:
    seq = root / "sequences" / "00"
    for d in ("image_0", "image_2"):
        (seq / d).mkdir(parents=True)
    K = frames[0].camera.K
    P0 = np.c_[K, np.zeros(3)]
    P2 = np.c_[K, K @ [0.06, 0.0, 0.0]]  # colour camera 6 cm to the left of cam0, as in KITTI
    lines = [f"P{i}: " + " ".join(f"{v:.12e}" for v in P.ravel()) for i, P in enumerate((P0, P0, P2, P2))]
    (seq / "calib.txt").write_text("\n".join(lines) + "\nTr: " + " ".join(["0"] * 12) + "\n")
    (seq / "times.txt").write_text("".join(f"{f.stamp:.6e}\n" for f in frames))
    for i, f in enumerate(frames):
        cv2.imwrite(str(seq / "image_0" / f"{i:06d}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2GRAY))
        cv2.imwrite(str(seq / "image_2" / f"{i:06d}.png"), _bgr(f.image))
    (root / "poses").mkdir()
    (root / "poses" / "00.txt").write_text("".join(" ".join(f"{v:.9e}" for v in f.gt_pose[:3].ravel()) + "\n"
                                                   for f in frames))
    return seq


def test_kitti_layout(tmp_path, frames):
    seq = open_sequence(str(_write_kitti(tmp_path, frames)))
    assert seq.kind == "kitti" and seq.name == "00" and len(seq) == 6 and seq.metric_gt
    np.testing.assert_allclose(seq.camera.K, frames[0].camera.K)
    got = list(seq)
    assert got[0].image.ndim == 2 and got[0].image.shape == (H, W)
    for f, ref in zip(got, frames):
        assert f.stamp == pytest.approx(ref.stamp)
        np.testing.assert_allclose(f.gt_pose, ref.gt_pose, atol=1e-8)
    colour = open_sequence(str(tmp_path / "sequences" / "00"), image_topic="image_2")
    f2 = next(iter(colour))
    assert f2.image.shape == (H, W, 3) and np.array_equal(f2.image, frames[0].image)
    np.testing.assert_allclose(f2.gt_pose[:3, 3], frames[0].gt_pose[:3, :3] @ [-0.06, 0, 0], atol=1e-9)


def test_tum_layout_with_depth_and_default_camera(tmp_path, frames):
    folder = tmp_path / "rgbd_dataset_freiburg1_synthetic"
    (folder / "rgb").mkdir(parents=True)
    (folder / "depth").mkdir()
    t0 = 1300000000.0
    rgb, depth, gt = ["# color images"], ["# depth maps"], ["# timestamp tx ty tz qx qy qz qw"]
    for i, f in enumerate(frames):
        t = t0 + f.stamp
        cv2.imwrite(str(folder / "rgb" / f"{t:.6f}.png"), _bgr(f.image))
        if i != 2:  # frame 2 has no depth within 20 ms
            cv2.imwrite(str(folder / "depth" / f"{t + 0.007:.6f}.png"), np.round(f.depth * 5000).astype(np.uint16))
            depth.append(f"{t + 0.007:.6f} depth/{t + 0.007:.6f}.png")
        rgb.append(f"{t:.6f} rgb/{t:.6f}.png")
        gt += [_tum_line(t - 0.004, f.gt_pose), _tum_line(t + 0.006, f.gt_pose)]  # 100 Hz mocap around it
    for name, lines in (("rgb.txt", rgb), ("depth.txt", depth), ("groundtruth.txt", gt)):
        (folder / name).write_text("\n".join(lines) + "\n")
    seq = open_sequence(str(folder), use_depth=True)
    assert seq.kind == "tum" and seq.has_depth
    assert seq.camera.fx == 517.3 and seq.camera.model == "plumb_bob" and len(seq.camera.D) == 5  # TUM fr1
    got = list(seq)
    assert got[2].depth is None and not got[2].error
    for i in (0, 1, 3):
        valid = frames[i].depth > 0
        np.testing.assert_allclose(got[i].depth[valid], frames[i].depth[valid], atol=1.5 / 5000)
        np.testing.assert_allclose(got[i].gt_pose, frames[i].gt_pose, atol=1e-6)
    (folder / "intrinsics.txt").write_text("# fx fy cx cy\n200 200 79.5 59.5\n")
    assert open_sequence(str(folder)).camera.fx == 200
    renamed = folder.rename(tmp_path / "my_recording")
    with pytest.raises(DatasetError, match="freiburg"):
        (renamed / "intrinsics.txt").unlink()
        open_sequence(str(renamed))
    assert open_sequence(str(renamed), intrinsics="200, 200, 79.5, 59.5").camera.cx == 79.5


def test_euroc_body_ground_truth(tmp_path, frames):
    cam = tmp_path / "seq" / "mav0" / "cam0"
    (cam / "data").mkdir(parents=True)
    T_BS = np.eye(4)
    T_BS[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    T_BS[:3, 3] = [0.02, -0.06, 0.01]
    K = frames[0].camera.K
    (cam / "sensor.yaml").write_text(
        "%YAML:1.0\nsensor_type: camera\nT_BS:\n  cols: 4\n  rows: 4\n  data: ["
        + ", ".join(f"{v:.12f}" for v in T_BS.ravel()) + "]\nrate_hz: 10\n"
        f"resolution: [{W}, {H}]\ncamera_model: pinhole\nintrinsics: [{K[0, 0]}, {K[1, 1]}, {K[0, 2]}, {K[1, 2]}]\n"
        "distortion_model: radial-tangential\ndistortion_coefficients: [-0.1, 0.01, 0.0, 0.0]\n")
    rows, gt = ["#timestamp [ns],filename"], ["#timestamp, p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m], q_RS_w []"]
    for f in frames:
        ns = 1403715273000000000 + int(f.stamp * 1e9)
        cv2.imwrite(str(cam / "data" / f"{ns}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2GRAY))
        rows.append(f"{ns},{ns}.png")
        T_wb = f.gt_pose @ np.linalg.inv(T_BS)
        x, y, z, w = Rotation.from_matrix(T_wb[:3, :3]).as_quat()
        for dt in (-2_500_000, 2_500_000):
            gt.append(f"{ns + dt},{T_wb[0, 3]},{T_wb[1, 3]},{T_wb[2, 3]},{w},{x},{y},{z},0,0,0,0,0,0,0,0,0")
    (cam / "data.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "seq" / "mav0" / "state_groundtruth_estimate0").mkdir()
    (tmp_path / "seq" / "mav0" / "state_groundtruth_estimate0" / "data.csv").write_text("\n".join(gt) + "\n")
    seq = open_sequence(str(tmp_path / "seq"))
    assert seq.kind == "euroc" and seq.camera.model == "radtan" and len(seq.camera.D) == 4
    for f, ref in zip(seq, frames):
        np.testing.assert_allclose(f.gt_pose, ref.gt_pose, atol=1e-6)
    assert len(open_sequence(str(cam))) == 6  # given the camera folder itself


def test_image_folder_yaml_times_and_a_corrupt_file(tmp_path, frames):
    folder = tmp_path / "imgs"
    (folder / "depth").mkdir(parents=True)
    names = [f"frame_{i}.png" for i in (1, 2, 3, 10, 11, 12)]  # natural order: 2 before 10
    for name, f in zip(names, frames):
        cv2.imwrite(str(folder / name), _bgr(f.image))
        np.save(folder / "depth" / name.replace(".png", ".npy"), f.depth)
    (folder / names[3]).write_bytes(b"not a png at all")
    (folder / "times.txt").write_text("".join(f"{5 + 0.05 * i}\n" for i in range(6)))
    K = frames[0].camera.K
    (folder / "camera_info.yaml").write_text(  # ROS camera_calibration layout
        f"image_width: {W}\nimage_height: {H}\ncamera_name: cam\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
        f"  data: [{K[0, 0]}, 0, {K[0, 2]}, 0, {K[1, 1]}, {K[1, 2]}, 0, 0, 1]\ndistortion_model: plumb_bob\n"
        "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0.1, -0.2, 0.001, 0.002, 0.0]\n")
    seq = open_sequence(str(folder), use_depth=True)
    assert seq.kind == "folder" and len(seq) == 6 and not seq.has_gt
    assert seq.camera.model == "plumb_bob" and seq.camera.width == W
    got = list(seq)
    assert len(got) == 6  # the corrupt file is a failed frame, not a missing one
    assert got[3].image is None and got[3].error.startswith("unreadable image") and names[3] in got[3].error
    assert [f.stamp for f in got] == pytest.approx([5 + 0.05 * i for i in range(6)])
    assert all(np.array_equal(g.image, f.image) for i, (g, f) in enumerate(zip(got, frames)) if i != 3)
    np.testing.assert_array_equal(got[1].depth, frames[1].depth)  # .npy depth: metres as stored
    assert [f.index for f in open_sequence(str(folder), stride=2)] == [0, 2, 4]


def test_folder_intrinsics_variants(tmp_path):
    yaml_flat = tmp_path / "intrinsics.yaml"
    yaml_flat.write_text("fx: 100\nfy: 101\ncx: 50\ncy: 40\nwidth: 100\nheight: 80\n"
                         "distortion_model: equidistant\nD: [0.1, 0.01, 0.0, 0.0]\n")
    cam, _ = read_intrinsics(yaml_flat)
    assert (cam.fx, cam.fy, cam.width, cam.model) == (100, 101, 100, "equidistant")
    txt = tmp_path / "K.txt"
    txt.write_text("100 0 50\n0 101 40\n0 0 1\n")
    assert read_intrinsics(txt)[0].fy == 101
    assert parse_intrinsics((1, 2, 3, 4))[0].cy == 4 and parse_intrinsics("1 2 3 4")[0].fx == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("fx: 1\nfy: 1\ncx: 0\ncy: 0\ndistortion_model: polynomial9000\nD: [1]\n")
    with pytest.raises(DatasetError, match="polynomial9000"):
        read_intrinsics(bad)
    zero = tmp_path / "zero.yaml"  # all-zero distortion: nothing to undistort
    zero.write_text("fx: 1\nfy: 1\ncx: 0\ncy: 0\ndistortion_model: plumb_bob\nD: [0, 0, 0, 0, 0]\n")
    assert read_intrinsics(zero)[0].model == "none" and "none" in DISTORTION_MODELS


def test_user_mistakes_raise_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        open_sequence(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as err:
        open_sequence(str(tmp_path / "empty"))
    assert "empty" in str(err.value) and "TUM" in str(err.value) and "rosbag2" in str(err.value)
    (tmp_path / "noK").mkdir()
    cv2.imwrite(str(tmp_path / "noK" / "a.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(DatasetError, match="intrinsics"):
        open_sequence(str(tmp_path / "noK"))
    with pytest.raises(DatasetError, match="depth"):
        open_sequence(str(tmp_path / "noK"), use_depth=True, intrinsics="1 1 1 1")
    with pytest.raises(DatasetError, match="stride"):
        open_sequence("synthetic", stride=0)
    with pytest.raises(DatasetError, match="frames"):
        open_sequence("synthetic:franes=3")
    with pytest.raises(DatasetError, match="motion"):
        open_sequence("synthetic:motion=teleport")
    with pytest.raises(DatasetError, match="intrinsics"):
        open_sequence("synthetic", intrinsics="1 1 1 1")


def test_poses_at_interpolates_and_associates():
    T1 = np.eye(4)
    T1[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    T1[:3, 3] = [1, 0, 0]
    gt = [(0.0, np.eye(4)), (0.05, T1), (1.0, np.eye(4))]
    mid, near, none, exact = poses_at([0.025, 1.015, 0.5, 1.0], gt)
    assert Rotation.from_matrix(mid[:3, :3]).magnitude() == pytest.approx(np.pi / 4)
    np.testing.assert_allclose(mid[:3, 3], [0.5, 0, 0])
    np.testing.assert_array_equal(near, np.eye(4))  # 15 ms after the last sample
    assert none is None  # in a 0.95 s gap: no interpolation that far
    np.testing.assert_array_equal(exact, np.eye(4))


def test_synthetic_source_strings():
    cfg = parse_synthetic("synthetic: frames=3, seed=2, motion=forward, noise=1.5, depth=true")
    assert (cfg.frames, cfg.seed, cfg.motion, cfg.noise, cfg.depth) == (3, 2, "forward", 1.5, True)
    seq = open_sequence("synthetic:frames=3,width=64,height=48,seed=0,motion=forward,depth=1")
    assert seq.kind == "synthetic" and len(seq) == 3 and seq.has_depth and seq.metric_gt
    got = list(seq)
    assert got[0].image.shape == (48, 64, 3) and got[2].depth is not None
    assert [t for t, _ in seq.ground_truth()] == pytest.approx([0.0, 0.1, 0.2])
    assert open_sequence("synthetic:frames=3,width=64,height=48").has_depth is False
    assert open_sequence("synthetic:frames=3,width=64,height=48", use_depth=True).has_depth is True
    assert len(open_sequence("synthetic", max_frames=4)) == 4


# ---------------------------------------------------------------------------------------------------- rosbag2
def _ros_types():
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    return ts, SimpleNamespace(**{k.split("/")[-1]: v for k, v in ts.types.items() if k.split("/")[0] in
                                  ("sensor_msgs", "std_msgs", "builtin_interfaces")})


def _header(m, t):
    return m.Header(stamp=m.Time(sec=int(t), nanosec=int(round((t - int(t)) * 1e9))), frame_id="cam")


def _info(m, t, K, D=(0.0,) * 5):
    return m.CameraInfo(header=_header(m, t), height=H, width=W, distortion_model="plumb_bob",
                        d=np.array(D, float), k=np.asarray(K, float).ravel(), r=np.eye(3).ravel(),
                        p=np.c_[K, np.zeros(3)].ravel(), binning_x=0, binning_y=0,
                        roi=m.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def _raw_image(m, t, img, encoding, pad=0):
    data = {"rgb8": img, "bgr8": img[:, :, ::-1], "rgba8": np.dstack([img, np.full((H, W), 255, np.uint8)]),
            "bgra8": np.dstack([img[:, :, ::-1], np.zeros((H, W), np.uint8)]),
            "mono8": cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), "yuv422": img[:, :, :2]}[encoding]
    rows = data.reshape(H, -1)
    rows = np.hstack([rows, np.zeros((H, pad), np.uint8)])  # step larger than the row: padding to skip
    return m.Image(header=_header(m, t), height=H, width=W, encoding=encoding, is_bigendian=0,
                   step=rows.shape[1], data=rows.ravel())


def _write_bag(path: Path, messages, mcap: bool = False):
    """messages: [(topic, t_seconds, msg)] in time order."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts, _ = _ros_types()
    plugin = StoragePlugin.MCAP if mcap else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for topic, t, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=ts)
            writer.write(conns[topic], int(t * 1e9), ts.serialize_cdr(msg, msg.__msgtype__))


def test_rosbag2_raw_images_camera_info_and_depth(tmp_path, frames):
    _, m = _ros_types()
    K = frames[0].camera.K
    K2 = K.copy()
    K2[0, 0] = 250.0
    encodings = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422"]
    msgs = [("/cam/camera_info", 99.95, _info(m, 99.95, K))]
    for i, (f, enc) in enumerate(zip(frames, encodings)):
        t = 100 + f.stamp
        if i == 3:  # recalibrated mid-bag: frames from here on carry the new K
            msgs.append(("/cam/camera_info", t - 0.01, _info(m, t - 0.01, K2, D=(0.1, 0, 0, 0, 0))))
        msgs.append(("/cam/image_raw", t, _raw_image(m, t, f.image, enc, pad=8 if i == 0 else 0)))
        if i != 4:  # frame 4: no depth within 20 ms
            mm = np.round(f.depth * 1000).astype(np.uint16)
            msgs.append(("/cam/depth/image_raw", t + 0.005, m.Image(
                header=_header(m, t + 0.005), height=H, width=W, encoding="16UC1", is_bigendian=0, step=2 * W,
                data=mm.view(np.uint8).ravel())))
    bag = tmp_path / "bag_raw"
    _write_bag(bag, msgs)

    seq = open_sequence(str(bag), use_depth=True)
    assert seq.kind == "rosbag2" and len(seq) == 6 and seq.has_depth and not seq.has_gt
    assert (seq.image_topic, seq.info_topic, seq.depth_topic) == ("/cam/image_raw", "/cam/camera_info",
                                                                  "/cam/depth/image_raw")
    got = list(seq)
    assert [f.index for f in got] == list(range(6))
    assert [f.stamp for f in got] == pytest.approx([100 + f.stamp for f in frames])
    for i in range(4):
        assert np.array_equal(got[i].image, frames[i].image), encodings[i]
    assert np.array_equal(got[4].image, cv2.cvtColor(frames[4].image, cv2.COLOR_RGB2GRAY))
    assert got[5].image is None and "yuv422" in got[5].error  # unsupported encoding: failed frame, not a crash
    assert got[0].camera.fx == K[0, 0] and got[2].camera.fx == K[0, 0]
    assert got[3].camera.fx == 250.0 and got[3].camera.model == "plumb_bob"
    assert got[4].depth is None
    np.testing.assert_allclose(got[1].depth, frames[1].depth, atol=0.0006)
    # stride / max_frames, fixed intrinsics, no depth
    sub = open_sequence(str(bag), stride=2, max_frames=2, intrinsics="300 300 80 60")
    sub_frames = list(sub)
    assert [f.index for f in sub_frames] == [0, 2] and len(sub) == 2 and sub_frames[1].camera.fx == 300
    assert (sub_frames[1].camera.width, sub_frames[1].camera.height) == (W, H)
    assert sub_frames[0].depth is None
    with pytest.raises(DatasetError, match="/cam/image_raw"):  # names what the bag has
        open_sequence(str(bag), image_topic="/front/image")
    with pytest.raises(DatasetError, match="depth"):
        open_sequence(str(bag), depth_topic="/nope")


def test_rosbag2_compressed_mcap(tmp_path, frames):
    _, m = _ros_types()
    K = frames[0].camera.K
    msgs = [("/front/camera_info", 10.0, _info(m, 10.0, K)), ("/rear/camera_info", 10.0, _info(m, 10.0, K))]
    for i, f in enumerate(frames[:4]):
        t = 10.05 + f.stamp
        fmt, ext = ("jpeg", ".jpg") if i == 1 else ("png", ".png")
        data = cv2.imencode(ext, _bgr(f.image))[1].ravel() if i != 2 else np.frombuffer(b"garbage", np.uint8)
        msgs.append(("/front/image_raw/compressed", t,
                     m.CompressedImage(header=_header(m, t), format=fmt, data=data.astype(np.uint8))))
        msgs.append(("/rear/image_raw", t, _raw_image(m, t, f.image, "rgb8")))
    bag = tmp_path / "bag_mcap"
    _write_bag(bag, msgs, mcap=True)
    with pytest.raises(DatasetError) as err:  # two cameras: the user must choose, and is told the candidates
        open_sequence(str(bag))
    assert "/front/image_raw/compressed" in str(err.value) and "/rear/image_raw" in str(err.value)
    mcap_file = next(bag.glob("*.mcap"))
    loose = tmp_path / "loose"  # a storage file in a folder without metadata.yaml
    loose.mkdir()
    (loose / mcap_file.name).write_bytes(mcap_file.read_bytes())
    for source in (bag, mcap_file, loose):  # the bag folder, the storage file, a folder with only that file
        seq = open_sequence(str(source), image_topic="/front/image_raw/compressed")
        assert seq.info_topic == "/front/camera_info" and len(seq) == 4
        got = list(seq)
        assert np.array_equal(got[0].image, frames[0].image)
        jpeg = cv2.cvtColor(cv2.imdecode(msgs[4][2].data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(got[1].image, jpeg)  # jpeg: decoded, in RGB order
        assert got[2].image is None and got[2].error and got[3].image is not None
        assert got[0].camera.fx == K[0, 0]
    rear = open_sequence(str(bag), image_topic="/rear/image_raw")
    assert rear.info_topic == "/rear/camera_info"
    with pytest.raises(DatasetError, match="CameraInfo"):
        open_sequence(str(bag), image_topic="/rear/image_raw", info_topic="/rear/image_raw")


def test_image_msg_decoding_honours_step_and_endianness():
    img = (np.arange(W * H, dtype=np.uint16).reshape(H, W) * 7)
    rows = np.hstack([img.astype(">u2").view(np.uint8).reshape(H, -1), np.zeros((H, 6), np.uint8)])
    msg = SimpleNamespace(encoding="mono16", is_bigendian=1, width=W, height=H, step=rows.shape[1], data=rows.ravel())
    out = image_to_numpy(msg)
    assert out.dtype == np.uint16 and np.array_equal(out, img)
    short = SimpleNamespace(encoding="rgb8", is_bigendian=0, width=W, height=H, step=3 * W, data=np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match="short"):
        image_to_numpy(short)


def test_depth_msg_decoding():
    mm = (np.arange(W * H, dtype=np.uint16).reshape(H, W) % 5000) + 1
    png = cv2.imencode(".png", mm)[1].tobytes()
    comp = SimpleNamespace(__msgtype__="sensor_msgs/msg/CompressedImage", format="16UC1; compressedDepth png",
                           data=np.frombuffer(b"\0" * 12 + png, np.uint8))  # 12-byte compressedDepth header
    np.testing.assert_allclose(compressed_depth_to_numpy(comp), mm / 1000.0, rtol=1e-6)
    metres = np.full((H, W), 1.5, np.float32)
    metres[0, 0] = np.nan
    raw = SimpleNamespace(__msgtype__="sensor_msgs/msg/Image", encoding="32FC1", is_bigendian=0, width=W, height=H,
                          step=4 * W, data=metres.view(np.uint8).ravel())
    out = depth_to_numpy(raw)
    assert out.dtype == np.float32 and np.isnan(out[0, 0]) and out[1, 1] == 1.5
