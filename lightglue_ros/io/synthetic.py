"""Synthetic textured scenes with exact ground truth: poses, intrinsics, depth and pixel correspondences.

Two scenes (`SyntheticConfig.scene`): ``room`` (below, the default) and ``drive``, a KITTI-like road with
facades, trees, parked and moving cars and an untextured sky, made to be hard for monocular odometry the way real
driving is (`lightglue_ros.io.drive`; this module selects it). Both render with the planar ray casting of
`lightglue_ros.io.raycast`.

The room: a closed room (6 walls) with a few boxes and a free-standing panel at 1.5-6 m, every surface covered with a
"dead leaves" texture (random overlapping discs, rectangles and triangles of random colour at many scales): rich in
corners and blobs for ALIKED, ORB and SIFT, and never periodic, so matches are unambiguous.

Rendering is exact planar ray casting, vectorised with numpy: every scene rectangle maps image pixels to its
texture tile by one homography, a z-buffer of inverse depth keeps the nearest surface, and one bilinear
``cv2.remap`` of the texture atlas colours the frame (light anti-aliasing, so features are stable across frames).

World frame = the first camera frame (optical convention: x right, y down, z forward); ``T_world_cam`` of frame 0
is the identity. Depth is the z of the optical frame in metres. Intrinsics are exact pinhole, no distortion.

The reader that yields these frames as a `Sequence` is `lightglue_ros.io.datasets.synthetic_sequence`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

from lightglue_ros.core.lie import rot_x, rot_y, rot_z
from lightglue_ros.core.types import Camera, Frame
from lightglue_ros.io import drive
from lightglue_ros.io.raycast import NEAR, Quad, cross3, pixel_rect, quad_homography  # noqa: F401 (Quad: API)

MOTIONS = ("orbit", "forward", "static", "rotate", "shake", "drive")
SCENES = ("room", "drive")
#: Motions each scene allows (the room's orbit / forward would leave the road; a drive needs the road).
SCENE_MOTIONS = {"room": ("orbit", "forward", "static", "rotate", "shake"),
                 "drive": ("drive", "static", "rotate", "shake")}
#: What 0 / "" fields mean per scene: (width, height, motion, step).
SCENE_DEFAULTS = {"room": (640, 480, "orbit", 0.05), "drive": (1226, 370, "drive", 0.85)}

#: Room extents in the world frame (metres; y down, the floor is at y = ROOM_MAX[1]).
ROOM_MIN = np.array([-2.5, -1.5, -1.5])
ROOM_MAX = np.array([2.5, 1.2, 6.0])


@dataclass
class SyntheticConfig:
    """A synthetic sequence. Zero / empty fields take the scene's own value (`SCENE_DEFAULTS`) on construction."""

    seed: int = 0
    frames: int = 60
    width: int = 0  # 0 = the scene's: 640 (room), 1226 (drive, KITTI)
    height: int = 0  # 0 = 480 (room), 370 (drive)
    fps: float = 10.0
    # orbit | forward | static | rotate (pure rotation) | shake (fast rotation, then back) | drive (along the road);
    # "" = the scene's: orbit (room), drive (drive). The drive scene allows drive, static, rotate, shake.
    motion: str = ""
    depth: bool = True  # render depth too
    step: float = 0.0  # metres per frame: peak speed of orbit / forward (0 = 0.05), mean speed of drive (0 = 0.85)
    noise: float = 0.0  # std of Gaussian pixel noise (grey levels), 0 = noise-free, deterministic per frame
    shake_at: int = -1  # motion=shake: first frame of the fast rotation (-1 = frames // 2)
    scene: str = "room"  # room | drive (see `lightglue_ros.io.drive`)
    cars: int = 0  # scene=drive: moving cars (one ahead in our lane, the others oncoming, alternating)

    def __post_init__(self):
        if self.scene not in SCENES:
            raise ValueError(f"synthetic scene {self.scene!r} unknown; choose one of {', '.join(SCENES)}")
        width, height, motion, step = SCENE_DEFAULTS[self.scene]
        self.width, self.height = self.width or width, self.height or height
        self.motion, self.step = self.motion or motion, self.step or step
        if self.motion not in MOTIONS:
            raise ValueError(f"synthetic motion {self.motion!r} unknown; choose one of {', '.join(MOTIONS)}")
        if self.motion not in SCENE_MOTIONS[self.scene]:
            raise ValueError(f"synthetic motion {self.motion!r} does not fit scene {self.scene!r}; choose one of "
                             f"{', '.join(SCENE_MOTIONS[self.scene])}")
        if self.cars < 0 or (self.cars and self.scene != "drive"):
            raise ValueError(f"synthetic cars={self.cars}: moving cars need scene=drive and cars >= 0")
        if self.frames < 1 or self.width < 16 or self.height < 16 or self.fps <= 0:
            raise ValueError(f"synthetic config out of range: frames={self.frames} width={self.width} "
                             f"height={self.height} fps={self.fps} (need frames >= 1, size >= 16, fps > 0)")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


# ---------------------------------------------------------------------------------------------------- the scene
@dataclass
class Scene:
    """The room: its rectangles and their texture atlas."""

    quads: list
    atlas: np.ndarray  # HxWx3 uint8 RGB texture atlas
    seed: int = 0


@dataclass
class _Box:
    centre: tuple
    half: tuple
    yaw_deg: float


def _box_quads(box: _Box) -> list[Quad]:
    """Six outward-facing rectangles of a box rotated about the vertical (y) axis."""
    c = np.asarray(box.centre, float)
    a = math.radians(box.yaw_deg)
    R = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    ex, ey, ez = (R[:, i] * 2 * box.half[i] for i in range(3))  # full edges
    lo = c - (ex + ey + ez) / 2  # the corner with all-minimal local coordinates
    hi = lo + ex + ey + ez
    # (origin, u, v) with u x v pointing out of the box
    return [Quad(lo, ez, ey), Quad(hi, -ey, -ez),  # -x face, +x face
            Quad(lo, ex, ez), Quad(hi, -ez, -ex),  # -y face (top: y is down), +y face (bottom)
            Quad(lo, ey, ex), Quad(hi, -ex, -ey)]  # -z face, +z face


def _room_quads() -> list[Quad]:
    """Six walls of the room box, each facing inwards."""
    lo, hi = ROOM_MIN, ROOM_MAX
    ex, ey, ez = (np.eye(3)[i] * (hi[i] - lo[i]) for i in range(3))
    quads = [Quad(lo, ey, ez), Quad(hi, -ez, -ey),
             Quad(lo, ez, ex), Quad(hi, -ex, -ez),
             Quad(lo, ex, ey), Quad(hi, -ey, -ex)]
    for q in quads:
        q.wall = True
    return quads


def _objects(rng: np.random.Generator) -> list[Quad]:
    """Boxes and a panel off the camera paths (orbit |x| < 1.1 near z = 0; forward |x| < 0.3, z < 3.6)."""
    boxes = [_Box((-1.25, 0.75, 2.2), (0.35, 0.45, 0.35), 20),  # standing on the floor (y = 1.2)
             _Box((1.3, 0.55, 2.9), (0.4, 0.65, 0.3), -25),
             _Box((0.3, -0.25, 5.0), (0.45, 0.35, 0.3), 10),
             _Box((-1.3, -0.6, 3.9), (0.3, 0.3, 0.3), 45),
             _Box((1.6, 0.1, 5.3), (0.3, 1.1, 0.3), 0)]
    quads = []
    for b in boxes:  # the seed moves and turns the furniture a little
        dx, dz = rng.uniform(-0.1, 0.1, 2)
        b = _Box((b.centre[0] + dx, b.centre[1], b.centre[2] + dz), b.half, b.yaw_deg + rng.uniform(-10, 10))
        quads += _box_quads(b)
    a = math.radians(35 + rng.uniform(-10, 10))
    u = np.array([math.cos(a), 0, -math.sin(a)]) * 0.7
    panel = Quad(np.array([0.9, -0.75, 1.6]) - u / 2, u, np.array([0, 0.5, 0]), two_sided=True)
    return quads + [panel]


def _dead_leaves(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random overlapping shapes of log-uniform size (2-30 texels): corners and blobs at every scale."""
    small = rng.integers(0, 256, (max(2, h // 48), max(2, w // 48), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    n = max(8, int(h * w / 220))
    radius = 2.0 * 15.0 ** rng.random(n)
    centre = rng.random((n, 2)) * (w, h)
    colours = rng.integers(0, 256, (n, 3)).tolist()
    kind = rng.integers(0, 3, n).tolist()
    # corner angles: rotated rectangles of random aspect (kind 1) or random triangles (kind 2)
    a0, a1 = rng.random(n) * 2 * np.pi, 1.0 + rng.random(n) * np.pi / 2
    rect = np.stack([a0, a0 + a1, a0 + np.pi, a0 + np.pi + a1], 1)
    tri = np.sort(rng.random((n, 3)) * 2 * np.pi, 1)
    to_fixed = 16  # 4 fractional bits: sub-texel shape positions
    rect_pts = np.round((centre[:, None] + radius[:, None, None] * np.stack([np.cos(rect), np.sin(rect)], 2))
                        * to_fixed).astype(np.int32)
    tri_pts = np.round((centre[:, None] + radius[:, None, None] * np.stack([np.cos(tri), np.sin(tri)], 2))
                       * to_fixed).astype(np.int32)
    circles = np.round(np.c_[centre, radius] * to_fixed).astype(int).tolist()
    for i in range(n):
        if kind[i] == 0:
            cx, cy, r = circles[i]
            cv2.circle(img, (cx, cy), r, colours[i], -1, cv2.LINE_AA, 4)
        else:
            cv2.fillConvexPoly(img, rect_pts[i] if kind[i] == 1 else tri_pts[i], colours[i], cv2.LINE_AA, 4)
    return cv2.GaussianBlur(img, (0, 0), 0.7)


def _pack(sizes: list[tuple[int, int]], width: int = 4096, margin: int = 2) -> tuple[list[tuple], int]:
    """Shelf-pack tiles (w, h), tallest first, with a margin; the interior (x0, y0) of each, and the height."""
    x = y = shelf = 0
    spots = [(0, 0)] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i][1]):
        w, h = sizes[i]
        if x + w + 2 * margin > width:
            x, y, shelf = 0, y + shelf, 0
        spots[i] = (x + margin, y + margin)
        x += w + 2 * margin
        shelf = max(shelf, h + 2 * margin)
    return spots, y + shelf


@functools.lru_cache(maxsize=4)
def make_scene(seed: int = 0) -> Scene:
    """Build the scene for a seed (cached: building the textures takes a few hundred milliseconds)."""
    rng = np.random.default_rng(seed)
    quads = _room_quads() + _objects(rng)
    # Texels per metre: walls are seen from >= 2 m, objects from 1-4 m; about one texel per pixel at 640x480.
    sizes = [(max(4, round(np.linalg.norm(q.edge_u) * (160 if q.wall else 300))),
              max(4, round(np.linalg.norm(q.edge_v) * (160 if q.wall else 300)))) for q in quads]
    margin = 2
    spots, height = _pack(sizes, margin=margin)
    atlas = np.zeros((height, 4096, 3), np.uint8)
    for q, (w, h), (x0, y0) in zip(quads, sizes, spots):
        tex = _dead_leaves(rng, h + 2 * margin, w + 2 * margin)  # the margin keeps bilinear lookups in the tile
        shade = rng.uniform(0.65, 1.0)  # surfaces differ in brightness, as under real light
        atlas[y0 - margin:y0 + h + margin, x0 - margin:x0 + w + margin] = cv2.convertScaleAbs(tex, alpha=shade)
        q.tile = (x0, y0, w, h)
    return Scene(quads, atlas, seed)


def synthetic_camera(width: int, height: int) -> Camera:
    """Exact pinhole camera, about 64 x 50 degrees field of view; pixel centres at integer coordinates."""
    f = 0.8 * width
    return Camera.pinhole(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)


# ---------------------------------------------------------------------------------------------------- rendering
def render(scene: Scene, T_world_cam: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Render one view: (rgb uint8 HxWx3, depth float32 HxW metres, 0 where nothing is hit)."""
    w, h = camera.width, camera.height
    K = np.asarray(camera.K, float)
    Kinv = np.linalg.inv(K)
    R, t = T_world_cam[:3, :3], T_world_cam[:3, 3]
    inv_depth = np.zeros((h, w), np.float32)  # z-buffer of 1/z: bigger is nearer, 0 = nothing yet
    map_x = np.full((h, w), -1e4, np.float32)
    map_y = np.full((h, w), -1e4, np.float32)
    us = np.arange(w, dtype=np.float32)
    vs = np.arange(h, dtype=np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for q in scene.quads:
            o, U, V = R.T @ (q.origin - t), R.T @ q.edge_u, R.T @ q.edge_v
            if not q.two_sided and cross3(U, V) @ o >= 0:
                continue  # seen from behind (box faces turned away)
            rect = pixel_rect(np.stack([o, o + U, o + U + V, o + V]), K, w, h)
            if rect is None:
                continue
            _draw_quad(q, quad_homography(q, o, U, V, Kinv), rect, us, vs, inv_depth, map_x, map_y)
        rgb = cv2.remap(scene.atlas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        depth = np.where(inv_depth > 0, 1.0 / inv_depth, 0.0).astype(np.float32)
    return rgb, depth


def _draw_quad(q: Quad, H: np.ndarray, rect, us, vs, inv_depth, map_x, map_y) -> None:
    """Z-buffered write of one rectangle's inverse depth and atlas coordinates inside its pixel rectangle."""
    r0, r1, c0, c1 = rect
    u, v = us[c0:c1], vs[r0:r1]

    def plane(row):  # python floats keep the arithmetic in float32
        return float(row[0]) * u + (float(row[1]) * v + float(row[2]))

    wz = plane(H[2])
    zb = inv_depth[r0:r1, c0:c1]
    nearer = wz > zb
    ax = plane(H[0]) / wz
    ay = plane(H[1]) / wz
    if not q.wall:  # inside the rectangle (walls of a closed convex room need no test)
        x0, y0, tw, th = q.tile
        nearer &= (ax >= x0 - 0.5) & (ax <= x0 + tw - 0.5) & (ay >= y0 - 0.5) & (ay <= y0 + th - 0.5)
    np.copyto(zb, wz, where=nearer)
    np.copyto(map_x[r0:r1, c0:c1], ax, where=nearer)
    np.copyto(map_y[r0:r1, c0:c1], ay, where=nearer)


# ---------------------------------------------------------------------------------------------------- trajectories
def look_at(eye, target, roll: float = 0.0) -> np.ndarray:
    """T_world_cam at `eye` looking at `target`, image y towards world +y (down), rolled about the optical axis."""
    eye = np.asarray(eye, float)
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], 1) @ rot_z(roll)
    T[:3, 3] = eye
    return T


def _orbit(i: int, step: float) -> np.ndarray:
    """Swing +-20 deg on a 3 m circle around a point ahead, with a little bob and roll: parallax + rotation."""
    radius, amp = 3.0, math.radians(20)
    omega = step / (radius * amp)  # peak speed = step metres per frame
    th = amp * math.sin(omega * i)
    target = np.array([0.0, 0.0, radius])
    eye = target + radius * np.array([-math.sin(th), 0.0, -math.cos(th)])
    eye[1] = 0.15 * math.sin(2 * omega * i)
    return look_at(eye, target, roll=math.radians(3) * math.sin(1.5 * omega * i))


def _forward(i: int, step: float) -> np.ndarray:
    """Walk down the room (and back, past 3.5 m) with a gentle sway and yaw."""
    length = 3.5
    d = (step * i) % (2 * length)
    z = d if d <= length else 2 * length - d
    phase = 2 * math.pi * i / 80
    T = np.eye(4)
    T[:3, :3] = rot_y(0.1 * math.sin(phase)) @ rot_x(0.03 * math.sin(2 * phase))
    T[:3, 3] = [0.25 * math.sin(phase), 0.05 * math.sin(2 * phase), z]
    return T


def _rotate(i: int) -> np.ndarray:
    """Pure rotation (no translation): yaw +-20 deg, pitch +-7 deg, about 1.5 deg per frame."""
    phase = 0.075 * i
    T = np.eye(4)
    T[:3, :3] = rot_y(math.radians(20) * math.sin(phase)) @ rot_x(math.radians(7) * math.sin(2 * phase))
    return T


#: motion=shake: extra yaw (deg) added over consecutive frames; each step between frames is >= 60 deg.
SHAKE_YAW_DEG = (60.0, 120.0, 60.0)


def trajectory(config: SyntheticConfig) -> list[np.ndarray]:
    """T_world_cam for every frame; frame 0 is the identity (the world is the first camera frame).

    The drive scene's ``drive`` and ``shake`` motions follow the road (`drive.drive_trajectory`); shake adds its
    yaw on top, as it does to the room's orbit.
    """
    poses = []
    shake_at = config.frames // 2 if config.shake_at < 0 else config.shake_at
    driving = config.scene == "drive" and config.motion in ("drive", "shake")
    if driving:
        road = drive.drive_trajectory(config.seed, config.frames, config.step)
    for i in range(config.frames):
        if config.motion == "static":
            T = np.eye(4)
        elif config.motion == "forward":
            T = _forward(i, config.step)
        elif config.motion == "rotate":
            T = _rotate(i)
        elif driving:
            T = road[i]
        else:
            T = _orbit(i, config.step)
        if config.motion == "shake" and 0 <= i - shake_at < len(SHAKE_YAW_DEG):
            T = T.copy()
            T[:3, :3] = T[:3, :3] @ rot_y(math.radians(SHAKE_YAW_DEG[i - shake_at]))
        poses.append(T)
    T0_inv = np.linalg.inv(poses[0])
    return [T0_inv @ T for T in poses]  # exact identity at frame 0 whatever the motion


def scene_for(config: SyntheticConfig):
    """Return the scene a config renders: the room `Scene` of its seed, or the `drive.DriveScene`."""
    if config.scene == "drive":
        return drive.make_drive_scene(config.seed, drive.scene_chunks(config.seed, config.frames, config.step),
                                      config.cars)
    return make_scene(config.seed)


def camera_for(config: SyntheticConfig) -> Camera:
    """Return the exact pinhole camera of a config: `synthetic_camera` (room) or KITTI's, scaled (drive)."""
    if config.scene == "drive":
        return drive.drive_camera(config.width, config.height)
    return synthetic_camera(config.width, config.height)


def render_frame(config: SyntheticConfig, index: int, pose: np.ndarray, scene=None) -> Frame:
    """Frame `index` of a synthetic sequence (scene from the config unless given, see `scene_for`).

    Drive frames also carry `Frame.dynamic` (pixels on moving cars; all False without cars).
    """
    scene = scene if scene is not None else scene_for(config)
    camera = camera_for(config)
    dynamic = None
    if config.scene == "drive":
        on_road = config.motion in ("drive", "shake")  # the cars keep their places relative to a camera that drives
        s_cam = float(drive.drive_arc_lengths(config.seed, config.frames, config.step)[index]) if on_road else 0.0
        grey, depth, dynamic = drive.render_drive(scene, pose, camera, drive.car_quads(scene, s_cam, index))
        rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    else:
        rgb, depth = render(scene, pose, camera)
    if config.noise > 0:  # seeded per frame: the same config gives the same bytes
        rng = np.random.default_rng([config.seed, index])
        rgb = np.clip(rgb + rng.normal(0, config.noise, rgb.shape), 0, 255).astype(np.uint8)
    return Frame(stamp=index / config.fps, image=rgb, camera=camera, depth=depth if config.depth else None,
                 gt_pose=pose.copy(), index=index, dynamic=dynamic)


# ---------------------------------------------------------------------------------------------------- GT matches
def _sample_depth(depth: np.ndarray, pts: np.ndarray, planar_tol: float = 1e-3) -> np.ndarray:
    """Depth at sub-pixel points, exact on the scene's planes; NaN near a depth edge or a crease.

    On a plane 1/z is affine in (u, v): its second differences over the 4x4 pixels around the point vanish and
    bilinear interpolation of 1/z is exact. Where they do not vanish the point is next to another surface, and
    interpolating would invent one.
    """
    h, w = depth.shape
    out = np.full(len(pts), np.nan)
    with np.errstate(invalid="ignore"):
        x0, y0 = np.floor(pts[:, 0]), np.floor(pts[:, 1])
        ok = (x0 >= 1) & (y0 >= 1) & (x0 + 2 < w) & (y0 + 2 < h)
    if not ok.any():
        return out
    xi, yi = x0[ok].astype(int), y0[ok].astype(int)
    fx, fy = pts[ok, 0] - xi, pts[ok, 1] - yi
    off = np.arange(-1, 3)
    patch = depth[(yi[:, None] + off)[:, :, None], (xi[:, None] + off)[:, None, :]].astype(float)  # N x 4 x 4
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / patch
        scale = planar_tol * inv[:, 1:3, 1:3].mean((1, 2))
        ddx = np.abs(inv[:, :, :-2] - 2 * inv[:, :, 1:-1] + inv[:, :, 2:]).max((1, 2))
        ddy = np.abs(inv[:, :-2, :] - 2 * inv[:, 1:-1, :] + inv[:, 2:, :]).max((1, 2))
        good = np.all(np.isfinite(patch) & (patch > 0), (1, 2)) & (ddx <= scale) & (ddy <= scale)
        c = inv[:, 1:3, 1:3]
        inv_z = (c[:, 0, 0] * (1 - fx) * (1 - fy) + c[:, 0, 1] * fx * (1 - fy)
                 + c[:, 1, 0] * (1 - fx) * fy + c[:, 1, 1] * fx * fy)
    out[np.flatnonzero(ok)[good]] = 1.0 / inv_z[good]
    return out


def project_correspondences(frame_a: Frame, frame_b: Frame, pts_a: np.ndarray,
                            occlusion_tol: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth position in frame b of pixels `pts_a` (Nx2) of frame a, from a's depth and both poses.

    Returns (pts_b Nx2 float64, NaN where invalid; valid N bool). A point is invalid when a has no exact depth
    there (within 2 pixels of a depth edge or crease, or of the border), it is behind camera b or outside image
    b, or b sees another surface there (b's depth differs from the point's by more than `occlusion_tol`,
    relative: occluded, or at a depth edge in b). Made for the synthetic scene's exact, piecewise-planar depth.

    Moving objects (`Frame.dynamic`, the drive's cars) are not static world: a point within 2 pixels of a moving
    pixel in a, or landing within 2 pixels of one in b, is invalid (never a correspondence on a car, nor one
    hidden by a car).
    """
    pts_a = np.asarray(pts_a, float).reshape(-1, 2)
    if frame_a.depth is None or frame_b.depth is None or frame_a.gt_pose is None or frame_b.gt_pose is None:
        raise ValueError("project_correspondences needs depth and gt_pose on both frames")
    z_a = _sample_depth(frame_a.depth, pts_a)
    rays = np.c_[pts_a, np.ones(len(pts_a))] @ np.linalg.inv(frame_a.camera.K).T
    X_a = rays * z_a[:, None]
    T_b_a = np.linalg.inv(frame_b.gt_pose) @ frame_a.gt_pose
    X_b = X_a @ T_b_a[:3, :3].T + T_b_a[:3, 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        uvw = X_b @ np.asarray(frame_b.camera.K, float).T
        pts_b = uvw[:, :2] / uvw[:, 2:3]
        valid = np.isfinite(z_a) & (X_b[:, 2] > NEAR)
        pts_b[~valid] = np.nan
        z_seen = _sample_depth(frame_b.depth, pts_b)  # NaN outside the image or at an edge in b
        valid &= np.abs(z_seen - X_b[:, 2]) <= occlusion_tol * X_b[:, 2]
    for frame, pts in ((frame_a, pts_a), (frame_b, pts_b)):
        if frame.dynamic is not None and frame.dynamic.any():
            valid &= ~_near_mask(frame.dynamic, pts)
    pts_b[~valid] = np.nan
    return pts_b, valid


def _near_mask(mask: np.ndarray, pts: np.ndarray, radius: int = 2) -> np.ndarray:
    """Flag the points (Nx2, NaN allowed) within `radius` pixels of a True pixel of `mask`; False outside."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0
    h, w = mask.shape
    out = np.zeros(len(pts), bool)
    with np.errstate(invalid="ignore"):
        x, y = np.rint(pts[:, 0]), np.rint(pts[:, 1])
        inside = (x >= 0) & (y >= 0) & (x < w) & (y < h)
    out[inside] = grown[y[inside].astype(int), x[inside].astype(int)]
    return out
