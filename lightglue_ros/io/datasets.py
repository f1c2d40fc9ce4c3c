"""Dataset readers: every source becomes a `FrameSequence`, an iterable of `types.Frame`.

``open_sequence(source, ...)`` detects the layout of a folder or file:

==========  ===================================================================================================
kind        layout
==========  ===================================================================================================
synthetic   ``"synthetic"`` or ``"synthetic:frames=60,width=320,height=240,seed=1,motion=orbit,depth=1"``
            (keys: the fields of `synthetic.SyntheticConfig`): rendered scene, exact pose / depth / intrinsics;
            ``"synthetic:scene=drive,frames=160,cars=2"``: the KITTI-like drive (1226x370 unless width/height).
rosbag2     a bag folder with ``metadata.yaml``, or one ``.db3`` / ``.mcap`` file (read with `rosbags`):
            ``sensor_msgs/Image`` (mono8, mono16, rgb8, bgr8, rgba8, bgra8, 8UC1, 16UC1; any ``step``) or
            ``sensor_msgs/CompressedImage``; intrinsics from ``sensor_msgs/CameraInfo`` (the latest valid one
            before each image); optional depth topic (16UC1 millimetres, 32FC1 metres, compressedDepth png),
            paired by nearest header stamp within 20 ms. Topics are picked automatically when unambiguous.
            Messages are decoded by `msg_decode`, the live node's decoder: a bag reads as the node sees it.
euroc       ``mav0/cam0/data.csv`` + ``mav0/cam0/sensor.yaml`` (``radial-tangential`` -> ``radtan``), stamps in
            ns; ground truth from ``gt_cam0_poses_tum.txt`` beside ``mav0/`` (T_world_cam0, TUM format) or
            ``mav0/state_groundtruth_estimate0/data.csv`` composed with the camera's ``T_BS``.
            ``image_topic="cam1"`` reads the other camera.
tum         ``rgb.txt`` (+ ``depth.txt``: 16-bit png, metres = value / 5000, nearest stamp within 20 ms) +
            ``groundtruth.txt`` or ``groundtruth_per_frame.txt`` (interpolated within 0.1 s gaps, else nearest
            within 20 ms). Intrinsics from ``intrinsics.txt``/``.yaml``, else TUM's published calibration of the
            freiburg1/2/3 colour camera chosen by the folder name (``freiburg1`` or ``fr1`` ...).
kitti       ``image_0/`` (or ``image_2/``, or ``image_topic="image_2"``), ``calib.txt`` (the ``P0:``/``P2:``
            line), ``times.txt``, ground truth from ``poses.txt`` or ``../../poses/NN.txt`` (12 numbers a line,
            T_world_cam0; converted to the chosen camera).
folder      images (png/jpg/... sorted naturally by name) in the folder or in ``color/``, ``rgb/``, ``image/``,
            ``images/``; intrinsics in ``intrinsics.yaml``/``camera.yaml``/``camera_info.yaml`` (flat fx fy cx cy
            [width height distortion_model D], the ROS camera_calibration layout, or Kalibr's) or
            ``intrinsics.txt`` (``fx fy cx cy [depth_scale]``); stamps from ``times.txt``, else from numeric file
            names (seconds or ns), else index / 10 Hz; optional ``depth/`` with the same file stems (16-bit:
            metres = value / depth_scale, default 1000; float: metres); optional poses in ``pose.txt`` /
            ``poses.txt`` / ``groundtruth.txt`` (TUM lines with stamps, ``tx ty tz qx qy qz qw`` or 12 KITTI
            numbers per frame). The slambook RGB-D set is this layout.
==========  ===================================================================================================

Frames are never dropped: a file that cannot be read yields a `Frame` with ``image=None`` and ``error`` saying why.
``Frame.index`` is the frame's position in the source (before ``stride``). Mistakes of the caller (unknown layout,
missing file, missing topic) raise `DatasetError` with a message that names the path and the fix.
"""
from __future__ import annotations

import csv
import re
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, Union

import cv2
import numpy as np
import yaml

from lightglue_ros.core.errors import LightGlueRosError
from lightglue_ros.core.types import DISTORTION_MODELS, Camera, Frame
from lightglue_ros.io.msg_decode import (ConversionError, camera_from_msg, compressed_depth_to_numpy,
                                         compressed_to_numpy, depth_to_numpy, distortion_model_name, image_to_numpy,
                                         stamp_to_sec)
from lightglue_ros.io.synthetic import SyntheticConfig, camera_for, render_frame, scene_for, trajectory

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
DEPTH_EXTENSIONS = (".png", ".pgm", ".tif", ".tiff", ".exr", ".npy")
PAIR_TOLERANCE_S = 0.02  # association window for depth and ground truth (TUM's associate.py default)
GT_MAX_GAP_S = 0.1  # interpolate ground truth only between samples closer than this (mocap runs at 100-200 Hz)

#: TUM's published colour-camera calibrations (plumb_bob k1 k2 p1 p2 k3). fr3 images come undistorted.
TUM_CAMERAS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3, (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    "freiburg2": (520.9, 521.0, 325.1, 249.7, (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    "freiburg3": (535.4, 539.2, 320.1, 247.6, ()),
}
TUM_DEPTH_SCALE = 5000.0

#: ``intrinsics=``: a calibration file, "fx fy cx cy", 4 numbers, or a Camera.
IntrinsicsSpec = Union[str, Path, tuple, list, Camera]

LAYOUTS_HELP = ("known layouts: image folder (images + intrinsics.yaml|camera.yaml|intrinsics.txt), "
                "TUM RGB-D (rgb.txt), KITTI odometry (image_0/ + calib.txt + times.txt), EuRoC (mav0/cam0/data.csv), "
                "rosbag2 (folder with metadata.yaml, or a .db3/.mcap file), synthetic ('synthetic[:key=value,...]')")


class DatasetError(LightGlueRosError):
    """A mistake in what the user asked for: the message says what is wrong and what to do."""


class FrameSequence:
    """An iterable of `Frame` (after stride / max_frames), with what it offers."""

    name: str = ""
    kind: str = ""  # folder | tum | kitti | euroc | rosbag2 | synthetic
    has_depth: bool = False  # frames carry depth
    has_gt: bool = False  # some frames carry gt_pose
    metric_gt: bool = False  # ground truth in metres
    camera: Optional[Camera] = None  # the camera of the first frame (bags may change it later)

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def ground_truth(self) -> list[tuple[float, np.ndarray]]:
        """(stamp, T_world_cam) of the yielded frames that have ground truth; [] when there is none."""
        return []

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.kind} {self.name!r}: {len(self)} frames, depth={self.has_depth}, "
                f"gt={self.has_gt}>")


def _select(n: int, stride: int, max_frames: Optional[int]) -> list[int]:
    idx = list(range(0, n, stride))
    return idx if max_frames is None else idx[:max_frames]


# ---------------------------------------------------------------------------------------------------- synthetic
class SyntheticSequence(FrameSequence):
    """Frames rendered on the fly from `synthetic.SyntheticConfig` (exact poses, intrinsics and depth)."""

    kind = "synthetic"

    def __init__(self, config: SyntheticConfig, stride: int = 1, max_frames: Optional[int] = None):
        self.config = config
        self.poses = trajectory(config)
        self.indices = _select(config.frames, stride, max_frames)
        motion = config.motion if config.scene == "room" else \
            ("drive" if config.motion == "drive" else f"drive-{config.motion}")
        self.name = f"synthetic-{motion}-seed{config.seed}"
        self.has_depth = bool(config.depth)
        self.has_gt = self.metric_gt = True
        self.camera = camera_for(config)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Frame]:
        scene = scene_for(self.config)
        for i in self.indices:
            yield render_frame(self.config, i, self.poses[i], scene)

    def ground_truth(self) -> list[tuple[float, np.ndarray]]:
        return [(i / self.config.fps, self.poses[i].copy()) for i in self.indices]


def synthetic_sequence(config: Optional[SyntheticConfig] = None, *, stride: int = 1,
                       max_frames: Optional[int] = None) -> FrameSequence:
    """Return the synthetic scene along its trajectory (see `lightglue_ros.io.synthetic`)."""
    return SyntheticSequence(config or SyntheticConfig(), stride, max_frames)


def parse_synthetic(spec: str, use_depth: bool = False) -> SyntheticConfig:
    """``synthetic[:key=value,...]`` -> SyntheticConfig; depth defaults to `use_depth` unless given."""
    defaults = SyntheticConfig()
    values: dict = {"depth": use_depth}
    rest = spec.partition(":")[2].strip()
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, val = (s.strip() for s in item.partition("="))
        if not eq or key not in SyntheticConfig.field_names():
            raise DatasetError(f"synthetic option {item!r} not understood; write key=value with keys "
                               f"{', '.join(SyntheticConfig.field_names())} "
                               "(e.g. 'synthetic:frames=30,motion=forward')")
        kind = type(getattr(defaults, key))
        try:
            values[key] = val.lower() in ("1", "true", "yes", "on") if kind is bool else kind(val)
        except ValueError:
            raise DatasetError(f"synthetic option {key}={val!r}: expected a {kind.__name__}") from None
    try:
        return SyntheticConfig(**values)
    except ValueError as err:
        raise DatasetError(str(err)) from None


# ---------------------------------------------------------------------------------------------------- cameras
def _model_name(name: str, where: str) -> str:
    """Distortion model names of ROS, Kalibr and EuRoC -> one of types.DISTORTION_MODELS."""
    key = distortion_model_name(name)
    if key is None:
        raise DatasetError(f"{where}: distortion model {name!r} not supported; use one of "
                           f"{', '.join(DISTORTION_MODELS)} (radial-tangential is read as radtan)")
    return key


def make_camera(width, height, fx, fy, cx, cy, D=(), model: str = "none", where: str = "") -> Camera:
    """Camera from numbers; all-zero distortion becomes model 'none' (nothing to undistort)."""
    cam = Camera.pinhole(int(width or 0), int(height or 0), float(fx), float(fy), float(cx), float(cy))
    D = np.asarray(D if D is not None else (), float).ravel()
    if cam.fx <= 0 or cam.fy <= 0:
        raise DatasetError(f"{where}: focal length fx={cam.fx} fy={cam.fy} is not positive (uncalibrated camera?); "
                           "give real intrinsics (intrinsics= 'fx fy cx cy' or a calibration file)")
    if D.size and np.any(D != 0):
        cam.D, cam.model = D, _model_name(model if model not in ("", "none") else "plumb_bob", where)
    return cam


class _OpenCVLoader(yaml.SafeLoader):
    """SafeLoader that also reads OpenCV's ``!!opencv-matrix`` mappings (EuRoC, ORB-SLAM settings files)."""


_OpenCVLoader.add_constructor("tag:yaml.org,2002:opencv-matrix", lambda loader, node: loader.construct_mapping(node))


def read_yaml(path: Path) -> dict:
    """YAML file as a dict; OpenCV's ``%YAML:1.0`` header (which PyYAML rejects) is dropped."""
    try:
        text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("%"))
        data = yaml.load(text, Loader=_OpenCVLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DatasetError(f"{path}: cannot read YAML ({err})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a YAML mapping of calibration fields")
    return data


def _numbers(value) -> list[float]:
    """Read a YAML list, or a {data: [...]} matrix (ROS / OpenCV), as floats."""
    if isinstance(value, dict):
        value = value.get("data", [])
    return [float(v) for v in (value or [])]


def camera_from_yaml(data: dict, where: str) -> tuple[Camera, Optional[float]]:
    """Camera (and optional depth_scale) from flat, ROS camera_info, Kalibr or EuRoC calibration YAML."""
    if isinstance(data.get("cam0"), dict):  # Kalibr camchain: the first camera
        data = data["cam0"]
    size = data.get("resolution") or [data.get("width", data.get("image_width", 0)),
                                      data.get("height", data.get("image_height", 0))]
    model = data.get("distortion_model", data.get("model", "none"))
    D = _numbers(data.get("distortion_coefficients", data.get("distortion_coeffs", data.get("D", data.get("d")))))
    if "camera_matrix" in data or "K" in data or "k" in data:
        K = np.array(_numbers(data.get("camera_matrix", data.get("K", data.get("k"))))).reshape(-1)
        if K.size != 9:
            raise DatasetError(f"{where}: camera_matrix must have 9 numbers, found {K.size}")
        fx, fy, cx, cy = K[0], K[4], K[2], K[5]
    elif "intrinsics" in data:  # Kalibr / EuRoC: [fu, fv, cu, cv]
        fx, fy, cx, cy = _numbers(data["intrinsics"])[:4]
    elif all(k in data for k in ("fx", "fy", "cx", "cy")):
        fx, fy, cx, cy = (float(data[k]) for k in ("fx", "fy", "cx", "cy"))
    else:
        raise DatasetError(f"{where}: no intrinsics found; expected fx fy cx cy, camera_matrix.data (ROS) or "
                           "intrinsics: [fu, fv, cu, cv] (Kalibr/EuRoC)")
    if str(data.get("camera_model", "pinhole")).lower() != "pinhole":
        raise DatasetError(f"{where}: camera_model {data['camera_model']!r} not supported (pinhole only)")
    scale = data.get("depth_scale")
    return make_camera(size[0], size[1], fx, fy, cx, cy, D, model, where), (float(scale) if scale else None)


def camera_from_text(path: Path) -> tuple[Camera, Optional[float]]:
    """``fx fy cx cy [depth_scale]`` on the first data line, or a 3x3 K matrix, '#' comments allowed."""
    rows = _number_rows(path)
    flat = [v for r in rows for v in r]
    if len(rows) == 3 and all(len(r) == 3 for r in rows) and flat[3] == 0 and flat[8] == 1:
        return make_camera(0, 0, flat[0], flat[4], flat[2], flat[5], where=str(path)), None
    if not rows or len(rows[0]) < 4:
        raise DatasetError(f"{path}: expected a line 'fx fy cx cy [depth_scale]' or a 3x3 K matrix")
    fx, fy, cx, cy = rows[0][:4]
    return make_camera(0, 0, fx, fy, cx, cy, where=str(path)), (rows[0][4] if len(rows[0]) > 4 else None)


def read_intrinsics(path: Path) -> tuple[Camera, Optional[float]]:
    """Camera from a calibration file (YAML or text); width/height 0 when the file does not say."""
    if not path.is_file():
        raise DatasetError(f"intrinsics file {path} not found")
    if path.suffix.lower() in (".yaml", ".yml"):
        return camera_from_yaml(read_yaml(path), str(path))
    return camera_from_text(path)


def parse_intrinsics(spec) -> tuple[Camera, Optional[float]]:
    """Parse the ``intrinsics=`` argument -> (Camera, depth_scale or None).

    A calibration file, ``"fx fy cx cy"`` (spaces or commas), a sequence of those 4 numbers, or a `Camera`
    (width/height 0 = taken from the images).
    """
    if isinstance(spec, Camera):
        return spec, None
    if not isinstance(spec, (str, Path)):
        values = list(spec)
        if len(values) != 4:
            raise DatasetError(f"intrinsics={spec!r}: expected 4 numbers fx fy cx cy")
        return make_camera(0, 0, *map(float, values), where="intrinsics argument"), None
    parts = re.split(r"[,\s]+", str(spec).strip())
    if len(parts) == 4:
        try:
            return make_camera(0, 0, *map(float, parts), where="intrinsics argument"), None
        except ValueError:
            pass
    path = Path(spec).expanduser()
    if not path.is_file():
        raise DatasetError(f"intrinsics={str(spec)!r} is neither a calibration file nor 'fx fy cx cy'")
    return read_intrinsics(path)


def _find_intrinsics(folder: Path) -> Optional[Path]:
    for name in ("intrinsics.yaml", "intrinsics.yml", "camera.yaml", "camera.yml", "camera_info.yaml",
                 "calibration.yaml", "intrinsics.txt", "camera.txt"):
        if (folder / name).is_file():
            return folder / name
    return None


# ---------------------------------------------------------------------------------------------------- text files
def _number_rows(path: Path, sep: str = r"[,\s]+") -> list[list[float]]:
    """Rows of numbers of a text file; '#' comments, blank lines and non-numeric headers are skipped."""
    rows = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read ({err})") from None
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            rows.append([float(v) for v in re.split(sep, line) if v])
        except ValueError:
            continue
    return rows


def _listing(path: Path) -> list[tuple[float, str]]:
    """TUM ``rgb.txt``/``depth.txt``: (stamp, relative path) per line."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2:
            try:
                out.append((float(parts[0]), parts[1]))
            except ValueError:
                raise DatasetError(f"{path}: line {line!r} is not 'timestamp filename'") from None
    return out


def pose_from_tum(values) -> np.ndarray:
    """``tx ty tz qx qy qz qw`` -> 4x4."""
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(np.asarray(values[3:7], float)).as_matrix()
    T[:3, 3] = values[:3]
    return T


def pose_from_kitti(values) -> np.ndarray:
    """Turn a KITTI pose row (12 numbers: the 3x4 ``[R | t]``, row-major) into a 4x4."""
    T = np.eye(4)
    T[:3, :] = np.asarray(values, float).reshape(3, 4)
    return T


def read_tum_trajectory(path: Path) -> list[tuple[float, np.ndarray]]:
    """TUM trajectory file ``stamp tx ty tz qx qy qz qw`` -> [(stamp, T)] sorted by stamp."""
    rows = [r for r in _number_rows(path) if len(r) >= 8]
    if not rows:
        raise DatasetError(f"{path}: no 'timestamp tx ty tz qx qy qz qw' lines")
    return sorted(((r[0], pose_from_tum(r[1:8])) for r in rows), key=lambda p: p[0])


def poses_at(stamps: list[float], gt: list[tuple[float, np.ndarray]], max_dt: float = PAIR_TOLERANCE_S,
             max_gap: float = GT_MAX_GAP_S) -> list[Optional[np.ndarray]]:
    """Ground truth at each stamp.

    Interpolated (slerp) between samples < max_gap apart, else the nearest sample within max_dt, else None.
    """
    from scipy.spatial.transform import Rotation, Slerp

    if not gt:
        return [None] * len(stamps)
    times = np.array([t for t, _ in gt])
    out: list[Optional[np.ndarray]] = []
    for t in stamps:
        i = int(np.searchsorted(times, t))
        if 0 < i < len(times) and times[i] - times[i - 1] <= max_gap:
            (t0, T0), (t1, T1) = gt[i - 1], gt[i]
            a = (t - t0) / (t1 - t0)
            T = np.eye(4)
            T[:3, :3] = Slerp([0.0, 1.0], Rotation.from_matrix([T0[:3, :3], T1[:3, :3]]))([a]).as_matrix()[0]
            T[:3, 3] = (1 - a) * T0[:3, 3] + a * T1[:3, 3]
            out.append(T)
            continue
        near = [j for j in (i - 1, i) if 0 <= j < len(times)]
        j = min(near, key=lambda j: abs(times[j] - t))
        out.append(gt[j][1].copy() if abs(times[j] - t) <= max_dt else None)
    return out


def _nearest(stamps: list[float], times: np.ndarray, max_dt: float) -> list[Optional[int]]:
    """Index of the nearest entry of sorted `times` within max_dt of each stamp."""
    out: list[Optional[int]] = []
    for t in stamps:
        i = int(np.searchsorted(times, t))
        near = [j for j in (i - 1, i) if 0 <= j < len(times)]
        j = min(near, key=lambda j: abs(times[j] - t)) if near else None
        out.append(j if j is not None and abs(times[j] - t) <= max_dt else None)
    return out


# ---------------------------------------------------------------------------------------------------- images
def to_rgb(img: np.ndarray) -> np.ndarray:
    """Convert OpenCV BGR(A) -> RGB; 16-bit colour -> 8-bit; mono stays HxW (8 or 16 bit)."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return img
    if img.dtype != np.uint8:
        img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else cv2.convertScaleAbs(img)
    code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(img, code)


def read_image(path: Path) -> Optional[np.ndarray]:
    """RGB uint8 HxWx3 or mono HxW, None when the file is missing or not a readable image."""
    try:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    return None if img is None or img.size == 0 else to_rgb(img)


def read_depth(path: Path, scale: float) -> Optional[np.ndarray]:
    """Depth image -> float32 metres (integer images / scale, float images as they are), None if unreadable."""
    try:
        d = np.load(path) if path.suffix == ".npy" else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except (OSError, ValueError, cv2.error):
        return None
    if d is None or d.ndim != 2 or d.size == 0:
        return None
    return d.astype(np.float32) / np.float32(scale) if d.dtype.kind in "iu" else d.astype(np.float32)


def _natural_key(path: Path):
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """List the image files of ``folder`` (by `IMAGE_EXTENSIONS`), in natural order: 2.png before 10.png."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                  key=_natural_key)


def _probe_size(paths: list[Path], where: str) -> tuple[int, int]:
    """(width, height) of the first readable image (calibration files do not always say)."""
    for p in paths:
        img = read_image(p)
        if img is not None:
            return img.shape[1], img.shape[0]
    raise DatasetError(f"{where}: none of the {len(paths)} image files could be read")


def _with_size(camera: Camera, paths: list[Path], where: str) -> Camera:
    if camera.width > 0 and camera.height > 0:
        return camera
    w, h = _probe_size(paths, where)
    return replace(camera, width=w, height=h)


# ---------------------------------------------------------------------------------------------------- file sequences
@dataclass
class _Item:
    """One frame of a file-based sequence, before reading its pixels."""

    stamp: float
    image: Path
    depth: Optional[Path] = None
    gt_pose: Optional[np.ndarray] = None
    index: int = 0


class FileSequence(FrameSequence):
    """Frames whose pixels are image files (folder, TUM, KITTI, EuRoC)."""

    def __init__(self, name: str, kind: str, items: list[_Item], camera: Camera, *, use_depth: bool = False,
                 depth_scale: float = 1000.0, stride: int = 1, max_frames: Optional[int] = None,
                 metric_gt: bool = True):
        self.name, self.kind, self.camera = name, kind, camera
        self.items = [items[i] for i in _select(len(items), stride, max_frames)]
        self.use_depth, self.depth_scale = use_depth, depth_scale
        self.has_depth = use_depth
        self.has_gt = any(it.gt_pose is not None for it in self.items)
        self.metric_gt = metric_gt and self.has_gt

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Frame]:
        for it in self.items:
            yield self._load(it)

    def _load(self, it: _Item) -> Frame:
        image = read_image(it.image)
        frame = Frame(stamp=it.stamp, image=image, camera=self.camera, index=it.index,
                      gt_pose=None if it.gt_pose is None else it.gt_pose.copy())
        if image is None:
            frame.error = f"unreadable image {it.image}"
        elif self.use_depth and it.depth is not None:
            frame.depth = read_depth(it.depth, self.depth_scale)
            if frame.depth is None:
                frame.error = f"unreadable depth {it.depth}"
        return frame

    def ground_truth(self) -> list[tuple[float, np.ndarray]]:
        return [(it.stamp, it.gt_pose.copy()) for it in self.items if it.gt_pose is not None]


def _need_depth(use_depth: bool, has: bool, where: Path, how: str) -> None:
    if use_depth and not has:
        raise DatasetError(f"use_depth=True but {where} has no depth ({how}); run without depth or add it")


def _camera_for(folder: Path, intrinsics: Optional[IntrinsicsSpec]) -> tuple[Optional[Camera], Optional[float]]:
    if intrinsics:
        return parse_intrinsics(intrinsics)
    found = _find_intrinsics(folder)
    return read_intrinsics(found) if found else (None, None)


def _open_tum(folder: Path, use_depth: bool, intrinsics: Optional[IntrinsicsSpec], **sel) -> FrameSequence:
    rgb = _listing(folder / "rgb.txt")
    if not rgb:
        raise DatasetError(f"{folder / 'rgb.txt'} lists no images")
    camera, _ = _camera_for(folder, intrinsics)
    if camera is None:
        camera = _tum_default_camera(folder)
    paths = [folder / p for _, p in rgb]
    camera = _with_size(camera, paths, str(folder))
    stamps = [t for t, _ in rgb]
    depth_of: list[Optional[Path]] = [None] * len(rgb)
    _need_depth(use_depth, (folder / "depth.txt").is_file(), folder, "no depth.txt")
    if use_depth:
        depth = sorted(_listing(folder / "depth.txt"))
        pick = _nearest(stamps, np.array([t for t, _ in depth]), PAIR_TOLERANCE_S)
        depth_of = [None if j is None else folder / depth[j][1] for j in pick]
    gt_file = next((folder / n for n in ("groundtruth.txt", "groundtruth_per_frame.txt")
                    if (folder / n).is_file()), None)
    gt = poses_at(stamps, read_tum_trajectory(gt_file)) if gt_file else [None] * len(rgb)
    items = [_Item(t, p, d, g, i) for i, (t, p, d, g) in enumerate(zip(stamps, paths, depth_of, gt))]
    return FileSequence(folder.name, "tum", items, camera, use_depth=use_depth, depth_scale=TUM_DEPTH_SCALE, **sel)


def _tum_default_camera(folder: Path) -> Camera:
    """Return TUM's calibration for the freiburg camera named in the folder path (fr1/fr2/fr3 or freiburg1/2/3)."""
    found = re.search(r"(?<![a-z])(?:freiburg|fr)([123])(?!\d)", folder.resolve().name.lower())
    if found:
        fx, fy, cx, cy, D = TUM_CAMERAS["freiburg" + found.group(1)]
        return make_camera(640, 480, fx, fy, cx, cy, D, "plumb_bob", str(folder))
    raise DatasetError(f"{folder}: no intrinsics.txt/intrinsics.yaml, and the folder name does not say which TUM "
                       "camera (freiburg1/2/3 or fr1/2/3) took it; add intrinsics.txt ('fx fy cx cy') or pass "
                       "intrinsics='fx fy cx cy'")


def _open_kitti(folder: Path, use_depth: bool, intrinsics: Optional[IntrinsicsSpec], image_topic: Optional[str],
                **sel) -> FrameSequence:
    _need_depth(use_depth, False, folder, "KITTI odometry has no depth images")
    cams = [c for c in ("image_0", "image_2", "image_1", "image_3") if (folder / c).is_dir()]
    cam_dir = image_topic or cams[0]
    if not (folder / cam_dir).is_dir():
        raise DatasetError(f"{folder}: camera folder {cam_dir!r} not found; it has {', '.join(cams)}")
    paths = list_images(folder / cam_dir)
    stamps = [r[0] for r in _number_rows(folder / "times.txt")]
    if len(stamps) != len(paths):
        raise DatasetError(f"{folder}: times.txt has {len(stamps)} stamps but {cam_dir}/ has {len(paths)} images")
    P = _kitti_projection(folder / "calib.txt", "P" + cam_dir[-1])
    camera = parse_intrinsics(intrinsics)[0] if intrinsics else make_camera(0, 0, P[0, 0], P[1, 1], P[0, 2], P[1, 2])
    camera = _with_size(camera, paths, str(folder))
    # Rectified cameras share cam0's rotation; P = K [I | t] with t the offset of this camera from cam0.
    T_cam0_cam = np.eye(4)
    T_cam0_cam[:3, 3] = -np.linalg.solve(P[:, :3], P[:, 3])
    gt: list[Optional[np.ndarray]] = [None] * len(paths)
    pose_file = next((p for p in (folder / "poses.txt", folder.parent.parent / "poses" / f"{folder.name}.txt")
                      if p.is_file()), None)
    if pose_file:
        rows = [r for r in _number_rows(pose_file) if len(r) == 12]
        if len(rows) != len(paths):
            raise DatasetError(f"{pose_file} has {len(rows)} poses but {cam_dir}/ has {len(paths)} images")
        gt = [pose_from_kitti(r) @ T_cam0_cam for r in rows]
    items = [_Item(t, p, None, g, i) for i, (t, p, g) in enumerate(zip(stamps, paths, gt))]
    return FileSequence(folder.name, "kitti", items, camera, **sel)


def _kitti_projection(calib: Path, key: str) -> np.ndarray:
    for line in calib.read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == key:
            values = [float(v) for v in rest.split()]
            if len(values) == 12:
                return np.array(values).reshape(3, 4)
    raise DatasetError(f"{calib}: no '{key}:' line with 12 numbers (KITTI projection matrix)")


def _euroc_root(path: Path) -> Optional[Path]:
    """Find the folder that holds ``mav0/``, given the sequence folder, ``mav0`` itself or a ``mav0/camN`` folder."""
    root = path.parent.parent if path.parent.name == "mav0" else path.parent if path.name == "mav0" else path
    has_cam = any((root / "mav0" / c / "data.csv").is_file() for c in ("cam0", "cam1"))
    return root if has_cam else None


def _open_euroc(root: Path, use_depth: bool, intrinsics: Optional[IntrinsicsSpec], image_topic: Optional[str],
                **sel) -> FrameSequence:
    _need_depth(use_depth, False, root, "EuRoC has no depth images")
    mav = root / "mav0"
    cam = image_topic or "cam0"
    cam_dir = mav / cam
    for need in (cam_dir / "data.csv", cam_dir / "sensor.yaml"):
        if not need.is_file():
            raise DatasetError(f"EuRoC sequence {root}: {need} is missing")
    sensor = read_yaml(cam_dir / "sensor.yaml")
    if intrinsics:
        camera = parse_intrinsics(intrinsics)[0]
    else:
        camera = camera_from_yaml(sensor, str(cam_dir / "sensor.yaml"))[0]
    entries = []
    with open(cam_dir / "data.csv", newline="") as f:
        for row in csv.reader(f):
            if not row or row[0].lstrip().startswith("#"):
                continue
            try:
                entries.append((int(row[0]) * 1e-9, cam_dir / "data" / row[1].strip()))
            except (ValueError, IndexError):
                raise DatasetError(f"{cam_dir / 'data.csv'}: line {','.join(row)!r} is not 'timestamp_ns,filename'")
    if not entries:
        raise DatasetError(f"{cam_dir / 'data.csv'} lists no images")
    paths = [p for _, p in entries]
    camera = _with_size(camera, paths, str(cam_dir))
    stamps = [t for t, _ in entries]
    gt = poses_at(stamps, _euroc_ground_truth(root, sensor))
    items = [_Item(t, p, None, g, i) for i, ((t, p), g) in enumerate(zip(entries, gt))]
    name = root.name if root.name != "mav0" else root.parent.name
    return FileSequence(f"{name}/{cam}", "euroc", items, camera, **sel)


def _euroc_ground_truth(root: Path, sensor: dict) -> list[tuple[float, np.ndarray]]:
    """T_world_cam samples of this camera: gt_cam0_poses_tum.txt (cam0) or the body ground truth x T_BS."""
    T_BS = np.array(_numbers(sensor.get("T_BS", {}))).reshape(4, 4) if sensor.get("T_BS") else np.eye(4)
    tum = root / "gt_cam0_poses_tum.txt"
    if tum.is_file():
        cam0 = root / "mav0" / "cam0" / "sensor.yaml"
        T_B_cam0 = np.array(_numbers(read_yaml(cam0)["T_BS"])).reshape(4, 4) if cam0.is_file() else np.eye(4)
        T_cam0_cam = np.linalg.solve(T_B_cam0, T_BS)
        return [(t, T @ T_cam0_cam) for t, T in read_tum_trajectory(tum)]
    body = root / "mav0" / "state_groundtruth_estimate0" / "data.csv"
    if not body.is_file():
        return []
    out = []
    for r in _number_rows(body):
        if len(r) >= 8:  # timestamp[ns], p_RS_R xyz, q_RS wxyz
            T = pose_from_tum([r[1], r[2], r[3], r[5], r[6], r[7], r[4]])
            out.append((r[0] * 1e-9, T @ T_BS))
    return sorted(out, key=lambda p: p[0])


def _image_dir(folder: Path) -> Optional[Path]:
    for d in (folder, *(folder / n for n in ("color", "rgb", "image", "images"))):
        if d.is_dir() and list_images(d):
            return d
    return None


def _open_folder(folder: Path, use_depth: bool, intrinsics: Optional[IntrinsicsSpec], **sel) -> FrameSequence:
    img_dir = _image_dir(folder)
    paths = list_images(img_dir)
    camera, depth_scale = _camera_for(folder, intrinsics)
    if camera is None:
        raise DatasetError(f"image folder {folder}: no intrinsics; add intrinsics.yaml (fx fy cx cy width height) "
                           "or intrinsics.txt ('fx fy cx cy'), or pass intrinsics='fx fy cx cy' or a file")
    camera = _with_size(camera, paths, str(folder))
    stamps = _folder_stamps(folder, paths)
    depth_of: list[Optional[Path]] = [None] * len(paths)
    _need_depth(use_depth, (folder / "depth").is_dir(), folder, "no depth/ folder")
    if use_depth:
        by_stem = {p.stem: p for p in (folder / "depth").iterdir() if p.suffix.lower() in DEPTH_EXTENSIONS}
        depth_of = [by_stem.get(p.stem) for p in paths]
    gt = _folder_poses(folder, stamps, len(paths))
    items = [_Item(t, p, d, g, i) for i, (t, p, d, g) in enumerate(zip(stamps, paths, depth_of, gt))]
    return FileSequence(folder.name, "folder", items, camera, use_depth=use_depth,
                        depth_scale=depth_scale or 1000.0, **sel)


def _folder_stamps(folder: Path, paths: list[Path]) -> list[float]:
    """times.txt, else numeric file names (seconds, or ns when huge), else 10 Hz."""
    for name in ("times.txt", "timestamps.txt"):
        if (folder / name).is_file():
            stamps = [r[-1] for r in _number_rows(folder / name)]
            if len(stamps) != len(paths):
                raise DatasetError(f"{folder / name} has {len(stamps)} stamps but the folder has {len(paths)} images")
            return stamps
    try:
        named = [float(p.stem) for p in paths]
        if all(t > 1e8 for t in named) and all(b > a for a, b in zip(named, named[1:])):
            return [t * 1e-9 if t > 1e15 else t for t in named]
    except ValueError:
        pass
    return [i / 10.0 for i in range(len(paths))]


def _folder_poses(folder: Path, stamps: list[float], n: int) -> list[Optional[np.ndarray]]:
    """Poses file: TUM lines with stamps (associated), or one 7-number / 12-number pose per image."""
    path = next((folder / f for f in ("pose.txt", "poses.txt", "groundtruth.txt") if (folder / f).is_file()), None)
    if path is None:
        return [None] * n
    rows = _number_rows(path)
    width = {len(r) for r in rows}
    if width == {8}:
        return poses_at(stamps, read_tum_trajectory(path))
    if width in ({7}, {12}) and len(rows) == n:
        return [pose_from_tum(r) if len(r) == 7 else pose_from_kitti(r) for r in rows]
    raise DatasetError(f"{path}: expected one pose per image ({n} lines of 'tx ty tz qx qy qz qw' or 12 KITTI "
                       f"numbers) or TUM lines 'stamp tx ty tz qx qy qz qw'; found {len(rows)} lines of "
                       f"{sorted(width)} numbers")


# ---------------------------------------------------------------------------------------------------- rosbag2
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def _stamp(msg, fallback_ns: int) -> float:
    """Return the header stamp, or the bag's receive time when the header has none."""
    s = msg.header.stamp
    return stamp_to_sec(s) if (s.sec or s.nanosec) else fallback_ns * 1e-9


def _camera(msg, where: str) -> Camera:
    """Decode CameraInfo -> Camera through the node's decoder; a refused one is a DatasetError that names the topic."""
    try:
        return camera_from_msg(msg)
    except ConversionError as err:
        raise DatasetError(f"{where}: unusable CameraInfo ({err}); pass intrinsics=") from None


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)  # only for bags without embedded definitions (Humble and older)


def _open_reader(path: Path):
    from rosbags.highlevel import AnyReader, AnyReaderError

    try:
        reader = AnyReader([path], default_typestore=_typestore())
        reader.open()
    except (AnyReaderError, FileNotFoundError, OSError, ValueError, KeyError) as err:
        raise DatasetError(f"{path}: cannot open as a rosbag2 ({err})") from None
    return reader


def _parents(topic: str) -> Iterator[str]:
    parts = topic.strip("/").split("/")
    for i in range(len(parts) - 1, -1, -1):
        yield "/" + "/".join(parts[:i]) if i else ""


class BagSequence(FrameSequence):
    """Images (+ CameraInfo, + optional depth) of a rosbag2, read with `rosbags`."""

    kind = "rosbag2"

    def __init__(self, path: Path, *, use_depth: bool = False, stride: int = 1, max_frames: Optional[int] = None,
                 image_topic: Optional[str] = None, info_topic: Optional[str] = None,
                 depth_topic: Optional[str] = None, intrinsics: Optional[IntrinsicsSpec] = None):
        self.path, self.name, self.stride, self.max_frames = path, path.stem, stride, max_frames
        reader = _open_reader(path)
        try:
            self.topics = {name: info.msgtype for name, info in reader.topics.items()}
            counts = {name: info.msgcount for name, info in reader.topics.items()}
            self.image_topic = self._pick_image(image_topic, depth_topic)
            self.depth_topic = self._pick_depth(depth_topic, use_depth)
            self.fixed_camera = parse_intrinsics(intrinsics)[0] if intrinsics else None
            self.info_topic = None if self.fixed_camera else self._pick_info(info_topic)
            self.camera = self.fixed_camera or self._first_info(reader)
        finally:
            reader.close()
        self.count = len(_select(counts.get(self.image_topic, 0), stride, max_frames))
        self.has_depth = self.depth_topic is not None

    # -- topic choice
    def _describe(self) -> str:
        return ", ".join(f"{t} [{m}]" for t, m in sorted(self.topics.items())) or "no topics"

    def _pick_image(self, wanted: Optional[str], depth_topic: Optional[str]) -> str:
        if wanted:
            if self.topics.get(wanted) not in IMAGE_TYPES:
                raise DatasetError(f"{self.path}: no image topic {wanted!r} (sensor_msgs Image/CompressedImage); "
                                   f"the bag has: {self._describe()}")
            return wanted
        images = [t for t, m in self.topics.items() if m in IMAGE_TYPES and t != depth_topic]
        colour = [t for t in images if "depth" not in t.lower()]  # a depth stream is not the camera image
        if len(colour) == 1:
            return colour[0]
        if not colour:
            raise DatasetError(f"{self.path}: no image topic (sensor_msgs/msg/Image or CompressedImage); "
                               f"the bag has: {self._describe()}")
        raise DatasetError(f"{self.path}: several image topics ({', '.join(sorted(colour))}); "
                           "choose one with image_topic=")

    def _pick_depth(self, wanted: Optional[str], use_depth: bool) -> Optional[str]:
        if wanted:
            if self.topics.get(wanted) not in IMAGE_TYPES:
                raise DatasetError(f"{self.path}: no depth topic {wanted!r}; the bag has: {self._describe()}")
            return wanted
        if not use_depth:
            return None
        depth = [t for t, m in self.topics.items() if m in IMAGE_TYPES and "depth" in t.lower()
                 and t != self.image_topic]
        if len(depth) != 1:
            raise DatasetError(f"{self.path}: use_depth=True but {'no' if not depth else 'more than one'} depth "
                               f"image topic found; pass depth_topic= (the bag has: {self._describe()})")
        return depth[0]

    def _pick_info(self, wanted: Optional[str]) -> str:
        if wanted:
            if self.topics.get(wanted) != INFO_TYPE:
                raise DatasetError(f"{self.path}: no CameraInfo topic {wanted!r}; the bag has: {self._describe()}")
            return wanted
        infos = [t for t, m in self.topics.items() if m == INFO_TYPE]
        for ns in _parents(self.image_topic):  # /cam/image_raw/compressed -> /cam/image_raw/, /cam/ ...
            if f"{ns}/camera_info" in infos:
                return f"{ns}/camera_info"
        if len(infos) == 1:
            return infos[0]
        raise DatasetError(f"{self.path}: {'no' if not infos else 'no unambiguous'} CameraInfo topic for "
                           f"{self.image_topic}; pass info_topic= or intrinsics= (the bag has: {self._describe()})")

    def _first_info(self, reader) -> Camera:
        conns = [c for c in reader.connections if c.topic == self.info_topic]
        for conn, _, raw in reader.messages(connections=conns):
            return _camera(reader.deserialize(raw, conn.msgtype), f"{self.path} {self.info_topic}")
        raise DatasetError(f"{self.path}: CameraInfo topic {self.info_topic} has no messages; pass intrinsics=")

    # -- reading
    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Frame]:
        reader = _open_reader(self.path)
        try:
            yield from self._frames(reader)
        finally:
            reader.close()

    def _frames(self, reader) -> Iterator[Frame]:
        topics = {self.image_topic, self.info_topic, self.depth_topic} - {None}
        conns = [c for c in reader.connections if c.topic in topics]
        camera = self.camera  # before the first CameraInfo: the bag's first one
        pending: deque = deque()  # frames waiting for a later depth image
        depths: deque = deque(maxlen=64)  # (stamp, msg, compressed) recent depth messages
        n_images = emitted = 0
        limit = self.count
        for conn, t_ns, raw in reader.messages(connections=conns):
            if conn.topic == self.info_topic and not self.fixed_camera:
                try:
                    camera = _camera(reader.deserialize(raw, conn.msgtype), f"{self.path} {conn.topic}")
                except DatasetError:
                    pass  # one bad CameraInfo: keep the previous calibration
            elif conn.topic == self.image_topic:
                n_images += 1
                if (n_images - 1) % self.stride or emitted + len(pending) >= limit:
                    continue
                pending.append(self._image_frame(reader, conn, raw, t_ns, n_images - 1, camera))
            elif conn.topic == self.depth_topic:
                msg = reader.deserialize(raw, conn.msgtype)
                depths.append((_stamp(msg, t_ns), msg, conn.msgtype.endswith("CompressedImage")))
            while pending and self._ready(pending[0], depths, len(pending)):
                emitted += 1
                yield self._with_depth(pending.popleft(), depths)
            if emitted >= limit:
                return
        while pending:
            yield self._with_depth(pending.popleft(), depths)

    def _ready(self, frame: Frame, depths: deque, waiting: int) -> bool:
        """Tell whether a frame can go: no later depth message could be nearer to it."""
        if self.depth_topic is None or frame.image is None or waiting > 32:
            return True
        return bool(depths) and depths[-1][0] > frame.stamp + PAIR_TOLERANCE_S

    def _image_frame(self, reader, conn, raw, t_ns: int, index: int, camera: Camera) -> Frame:
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except Exception as err:  # noqa: BLE001 - a corrupt message fails this frame, not the run
            return Frame(stamp=t_ns * 1e-9, image=None, camera=camera, index=index,
                         error=f"undecodable message on {conn.topic}: {err}")
        frame = Frame(stamp=_stamp(msg, t_ns), image=None, camera=camera, index=index)
        try:
            frame.image = compressed_to_numpy(msg) if conn.msgtype.endswith("CompressedImage") else image_to_numpy(msg)
        except ValueError as err:
            frame.error = f"unreadable image on {conn.topic} at {frame.stamp:.6f}: {err}"
            return frame
        if camera is not None and camera.width == 0:  # intrinsics='fx fy cx cy': the size comes from the image
            frame.camera = replace(camera, width=frame.image.shape[1], height=frame.image.shape[0])
            if self.camera is camera:
                self.camera = self.fixed_camera = frame.camera
        return frame

    def _with_depth(self, frame: Frame, depths: deque) -> Frame:
        if self.depth_topic is None or frame.image is None or not depths:
            return frame
        stamp, msg, compressed = min(depths, key=lambda d: abs(d[0] - frame.stamp))
        if abs(stamp - frame.stamp) <= PAIR_TOLERANCE_S:
            try:
                frame.depth = compressed_depth_to_numpy(msg) if compressed else depth_to_numpy(msg)
            except ValueError as err:
                frame.error = f"unreadable depth on {self.depth_topic} at {stamp:.6f}: {err}"
        return frame


# ---------------------------------------------------------------------------------------------------- detection
def detect_layout(path: Path) -> str:
    """Which reader a path needs: rosbag2 | euroc | tum | kitti | folder; DatasetError when none fits."""
    if path.is_file():
        if path.suffix.lower() in (".db3", ".mcap") or path.name == "metadata.yaml":
            return "rosbag2"
        raise DatasetError(f"{path}: a single file is read only as a rosbag2 (.db3/.mcap); {LAYOUTS_HELP}")
    if (path / "metadata.yaml").is_file() or any(path.glob("*.db3")) or any(path.glob("*.mcap")):
        return "rosbag2"
    if _euroc_root(path) is not None:
        return "euroc"
    if (path / "rgb.txt").is_file():
        return "tum"
    if (path / "calib.txt").is_file() and any((path / c).is_dir() for c in ("image_0", "image_2", "image_1")):
        return "kitti"
    if _image_dir(path) is not None:
        return "folder"
    raise DatasetError(f"{path}: unknown dataset layout (no images found); {LAYOUTS_HELP}")


def _bag_path(path: Path) -> Path:
    """Return the path rosbags opens.

    The bag folder (with metadata.yaml), or the one storage file of a folder without it.
    """
    if path.name == "metadata.yaml":
        return path.parent
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        files = sorted([*path.glob("*.db3"), *path.glob("*.mcap")])
        if len(files) != 1:
            raise DatasetError(f"{path}: no metadata.yaml and {len(files)} storage files "
                               f"({', '.join(f.name for f in files)}); give one .db3/.mcap file")
        return files[0]
    return path


def open_sequence(source: str, *, use_depth: bool = False, stride: int = 1, max_frames: Optional[int] = None,
                  image_topic: Optional[str] = None, info_topic: Optional[str] = None,
                  depth_topic: Optional[str] = None, intrinsics: Optional[IntrinsicsSpec] = None) -> FrameSequence:
    """Open any supported source (see the module docstring) as a `FrameSequence`.

    ``stride`` keeps every n-th frame, ``max_frames`` caps the count after striding. ``image_topic`` names the
    bag topic, or the camera folder of KITTI (image_0|image_2) and EuRoC (cam0|cam1). ``intrinsics`` (a file,
    ``"fx fy cx cy"``, 4 numbers or a `Camera`) overrides the calibration of any source but the synthetic one.
    """
    if int(stride) < 1 or (max_frames is not None and int(max_frames) < 0):
        raise DatasetError(f"stride must be >= 1 and max_frames >= 0 (got stride={stride}, max_frames={max_frames})")
    sel = {"stride": int(stride), "max_frames": None if max_frames is None else int(max_frames)}
    source = str(source)
    if source == "synthetic" or source.startswith("synthetic:"):
        if intrinsics is not None:
            raise DatasetError("the synthetic scene has its own exact intrinsics; drop intrinsics= "
                               "(set width/height in 'synthetic:width=..,height=..')")
        return SyntheticSequence(parse_synthetic(source, use_depth), **sel)
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    layout = detect_layout(path)
    if layout == "rosbag2":
        return BagSequence(_bag_path(path), use_depth=use_depth, image_topic=image_topic, info_topic=info_topic,
                           depth_topic=depth_topic, intrinsics=intrinsics, **sel)
    if layout == "euroc":
        if image_topic is None and path.parent.name == "mav0":  # given mav0/cam1: read that camera
            image_topic = path.name
        return _open_euroc(_euroc_root(path), use_depth, intrinsics, image_topic, **sel)
    if layout == "tum":
        return _open_tum(path, use_depth, intrinsics, **sel)
    if layout == "kitti":
        return _open_kitti(path, use_depth, intrinsics, image_topic, **sel)
    return _open_folder(path, use_depth, intrinsics, **sel)
