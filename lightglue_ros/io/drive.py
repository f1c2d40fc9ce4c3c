"""A KITTI-like synthetic drive with exact ground truth, hard for monocular odometry the way real driving is.

Selected with ``SyntheticConfig(scene="drive")`` / ``synthetic:scene=drive,...`` (issue 11); `synthetic` dispatches
to it, and both render with the planar ray casting of `raycast` (this module imports neither `synthetic` nor
`datasets`).

What real driving has and the room scene has not: most texture sits on the road close to the camera, where the
parallax is large and points leave the view within a few frames, or on far facades near the focus of expansion,
where there is almost no parallax; the road itself is low-contrast grain with a few lane markings; the sky has no
texture at all; other cars move. Modelled on KITTI's grey cameras: 1226x370 pixels, fx = fy = 707.09, camera
1.65 m above a flat road, 10 Hz, 0.5-1.2 m per frame.

The world (world = the first camera frame, optical convention x right, y down, z forward):
- the road plane ``y = CAMERA_HEIGHT``, endless; a ring of far backdrop walls (hills, skyline) 250-450 m around
  the whole route closes the view, so every ray below the horizon hits something and every ray above it either
  a wall or the sky;
- the camera drives along a smooth path ``P(s)`` (s = arc length) in the right lane, ``LANE_OFFSET`` right of
  the road's centre line; the path turns in bumps of curvature (15-40 degrees each, radius >= 50 m) every
  60-140 m, the heading never more than 60 degrees from the start;
- along the road, in chunks of ``CHUNK`` metres, each a pure function of (seed, chunk): buildings (boxes with
  window facades) 8-30 m from the centre line, trees (foliage boxes on trunks) on the sidewalk, hedges, gaps,
  parked cars on both parking strips, and mid-distance buildings 40-120 m out;
- ``cars=N`` moving cars (the same boxes, `moving=True`): one ahead in our lane at a varying gap, the rest
  oncoming in the other lane. They are part of the rendered image and depth, but not of the static world:
  `Frame.dynamic` marks their pixels and `lightglue_ros.io.synthetic.project_correspondences` never returns a
  correspondence on them.

Textures are grey (KITTI's odometry cameras are grey; the frame is RGB with three equal channels) and are sampled
with trilinear mip-mapping: the road is seen at grazing angles (a pixel 30 m ahead covers 0.8 m of road along
the view and 4 cm across), and unfiltered sampling would alias into flicker that no real camera shows. The level
of detail allows 2:1 anisotropy (a little along-view aliasing instead of blurring the road across). The road
texture is a function of world position only: a coarse overview (0.4 m texels) everywhere, and fine tiles
(2.5 cm texels, generated lazily when a camera comes near) within ``FINE_HALF_WIDTH`` of the centre line. Both
evaluate the same band-limited features (lane markings, kerbs, patches, slab joints: box-filtered coverage), the
fine tiles add zero-mean grain and stones.

Geometry is exact as in the room scene: planar ray casting with one homography per rectangle and a z-buffer of
inverse depth; the road plane is one more homography.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from lightglue_ros.core.lie import rot_x, rot_y, rot_z
from lightglue_ros.core.types import Camera
from lightglue_ros.geometry.resize import scale_camera
from lightglue_ros.io.raycast import Quad, cross3, pixel_rect, quad_homography

#: KITTI odometry, sequences 00-02, camera 0 (grey, rectified): size and intrinsics.
KITTI_WIDTH, KITTI_HEIGHT = 1226, 370
KITTI_F, KITTI_CX, KITTI_CY = 707.0912, 601.8873, 183.1104
#: Height of the camera centre above the road (m); the road is the plane y = CAMERA_HEIGHT of the world.
CAMERA_HEIGHT = 1.65
#: The camera drives this far right of the road's centre line (the middle of the right lane), metres.
LANE_OFFSET = 1.75
#: Mean speed (m per frame, default of `SyntheticConfig.step` for the drive); the speed swings +-41 % about it.
MEAN_SPEED = 0.85
#: Road length per chunk of scenery (m); the scene covers the route plus LOOKAHEAD, rounded up to chunks.
CHUNK = 250.0
LOOKAHEAD = 300.0
#: Road cross-section, |d| metres from the centre line: lanes to 3.5 (edge line at 3.3), parking strip to 5.5,
#: kerb stone to 5.7, sidewalk to 8, then verge and fields.
LANE_EDGE, KERB, KERB_STONE, WALK = 3.5, 5.5, 5.7, 8.0
FINE_HALF_WIDTH = 12.0  # fine road texture within this of the centre line
GROUND_TEXEL = 0.025  # m, fine road tiles
GROUND_TILE = 512  # texels per fine tile side (12.8 m)
OVERVIEW_TEXEL = 0.4  # m, the coarse road overview (= GROUND_TEXEL * 2**FINE_LEVELS)
FINE_LEVELS = 4  # mip levels of the fine tiles below the overview
MARGIN = 16  # texels of texture continued around every tile: keeps mip level 4 lookups inside the tile
ANISO = 2.0  # level of detail from max(minor, major / ANISO) of the pixel footprint
MAX_SLOTS = 64  # fine road tiles kept in the atlas at once (least recently used ones are dropped)
_NEAR = 0.05

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# ---------------------------------------------------------------------------------------------------- noise
def _hash01(seed: int, salt: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) float32 from integer lattice coordinates (splitmix64): world-coherent white noise."""
    a = np.asarray(a, np.int64).astype(np.uint64)
    b = np.asarray(b, np.int64).astype(np.uint64)
    key = np.uint64((seed * 0x9E3779B1 + salt * 0x85EBCA77 + 0x632BE5AB) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        h = a * np.uint64(0x9E3779B97F4A7C15) ^ (b * np.uint64(0xC2B2AE3D27D4EB4F)) ^ key
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _lerp_weights(pos: np.ndarray, smooth: bool):
    i0 = np.floor(pos).astype(np.int64)
    f = (pos - i0).astype(np.float32)
    if smooth:
        f = f * f * (3 - 2 * f)
    return i0, f


def _interp_grid(grid: np.ndarray, px: np.ndarray, pz: np.ndarray, smooth: bool = False) -> np.ndarray:
    """Separable (bi)linear interpolation of ``grid[z, x]`` at fractional lattice positions px (nx,), pz (nz,)."""
    ix, fx = _lerp_weights(px, smooth)
    iz, fz = _lerp_weights(pz, smooth)
    rows = grid[:, ix] * (1 - fx) + grid[:, ix + 1] * fx
    return rows[iz] * (1 - fz)[:, None] + rows[iz + 1] * fz[:, None]


def _value_noise(seed: int, salt: int, xs: np.ndarray, zs: np.ndarray, spacing: float) -> np.ndarray:
    """Smooth noise in [-1, 1] on the grid xs x zs (metres; result [z, x]), a function of world position only."""
    gx, gz = xs / spacing, zs / spacing
    x0, z0 = int(math.floor(gx.min())), int(math.floor(gz.min()))
    lx = np.arange(x0, int(math.floor(gx.max())) + 2)
    lz = np.arange(z0, int(math.floor(gz.max())) + 2)
    lattice = 2.0 * _hash01(seed, salt, lx[None, :], lz[:, None]) - 1.0
    return _interp_grid(lattice, gx - x0, gz - z0, smooth=True).astype(np.float32)


def _cover(x, a: float, b: float, w: float):
    """Fraction of the interval [x - w/2, x + w/2] inside [a, b]: a box-filtered (band-limited) step."""
    return np.clip((np.minimum(x + w / 2, b) - np.maximum(x - w / 2, a)) / w, 0.0, 1.0)


def _periodic_cover(x, period: float, on: float, w: float):
    """Fraction of [x - w/2, x + w/2] where (x mod period) < on: box-filtered dashes or joints."""
    def cumulative(t):
        k = np.floor(t / period)
        return k * on + np.minimum(t - k * period, on)
    return (cumulative(x + w / 2) - cumulative(x - w / 2)) / w


# ---------------------------------------------------------------------------------------------------- the route
@dataclass(eq=False)
class DrivePath:
    """The camera's path on the road plane, sampled every `DS` metres of arc length.

    ``x``, ``z``: world position of the camera at arc length ``s``; ``heading``: yaw, the direction of travel is
    (sin h, cos h) in (x, z) and the right normal (cos h, -sin h). Between samples everything is interpolated
    linearly, and the poses and the scenery use the same interpolation.
    """

    s: np.ndarray
    x: np.ndarray
    z: np.ndarray
    heading: np.ndarray
    curvature: np.ndarray

    DS = 0.25

    def at(self, s):
        """(x, z, heading) at arc length(s) s."""
        s = np.asarray(s, float)
        return (np.interp(s, self.s, self.x), np.interp(s, self.s, self.z), np.interp(s, self.s, self.heading))

    def point(self, s, d):
        """World (x, z) of road coordinates: arc length s, d metres right of the road's centre line."""
        x, z, h = self.at(s)
        e = np.asarray(d, float) - LANE_OFFSET
        return x + e * np.cos(h), z - e * np.sin(h)

    def project(self, x: np.ndarray, z: np.ndarray, far: float = 40.0):
        """Road coordinates (s, d) of world points (Newton from the nearest sample); d = 1e3 beyond `far` m."""
        x, z = np.asarray(x, float).ravel(), np.asarray(z, float).ravel()
        dist, idx = self.tree().query(np.c_[x, z])
        s = self.s[idx].astype(float)
        for _ in range(3):
            px, pz, h = self.at(s)
            s = s + (x - px) * np.sin(h) + (z - pz) * np.cos(h)
        s = np.clip(s, self.s[0], self.s[-1])
        px, pz, h = self.at(s)
        d = (x - px) * np.cos(h) - (z - pz) * np.sin(h) + LANE_OFFSET
        d[dist > far] = 1e3
        return s, d

    def tree(self):
        """KD-tree of the samples (built once)."""
        if "_tree" not in self.__dict__:
            from scipy.spatial import cKDTree

            self.__dict__["_tree"] = cKDTree(np.c_[self.x, self.z])
        return self.__dict__["_tree"]


def _turns(seed: int, s_max: float) -> list[tuple[float, float, float]]:
    """(centre s, heading change rad, width sigma m) of the turns, the same sequence for any s_max."""
    rng = np.random.default_rng([seed, 2])
    turns, c, heading = [], 30.0 + rng.uniform(0, 30), 0.0
    while c < s_max + 100:
        delta = math.radians(rng.uniform(15, 40)) * (1 if rng.random() < 0.5 else -1)
        if abs(heading + delta) > math.radians(60):  # keep the route from coming back on itself
            delta = -delta
        sigma = max(rng.uniform(8, 20), 20 * abs(delta))  # curvature <= 1 / 50 m
        turns.append((c, delta, sigma))
        heading += delta
        c += rng.uniform(60, 140)
    return turns


@functools.lru_cache(maxsize=8)
def drive_path(seed: int, s_max: float) -> DrivePath:
    """Build the route of a seed from s = -60 m to `s_max`; frame 0 is at s = 0, the origin, heading 0."""
    from scipy.special import erf

    ds = DrivePath.DS
    s = np.arange(-round(60 / ds), round(s_max / ds) + 1) * ds
    heading = np.zeros_like(s)
    curvature = np.zeros_like(s)
    for c, delta, sigma in _turns(seed, s_max):
        heading += delta / 2 * (erf((s - c) / (sigma * math.sqrt(2))) - erf(-c / (sigma * math.sqrt(2))))
        curvature += delta / (sigma * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((s - c) / sigma) ** 2)
    i0 = int(np.flatnonzero(s == 0)[0])
    # position: trapezoid integration of the direction of travel, outwards from s = 0 (exactly the origin)
    dx, dz = np.sin(heading), np.cos(heading)
    step_x, step_z = (dx[1:] + dx[:-1]) * ds / 2, (dz[1:] + dz[:-1]) * ds / 2
    x, z = np.zeros_like(s), np.zeros_like(s)
    x[i0 + 1:], z[i0 + 1:] = np.cumsum(step_x[i0:]), np.cumsum(step_z[i0:])
    x[:i0], z[:i0] = -np.cumsum(step_x[:i0][::-1])[::-1], -np.cumsum(step_z[:i0][::-1])[::-1]
    return DrivePath(s, x, z, heading, curvature)


def drive_speeds(seed: int, frames: int, mean_step: float) -> np.ndarray:
    """Metres driven from frame i to i + 1: a smooth swing between 0.59 and 1.41 times `mean_step`."""
    rng = np.random.default_rng([seed, 1])
    p1, p2 = rng.uniform(0, 2 * math.pi, 2)
    i = np.arange(frames, dtype=float)
    return mean_step * (1 + 0.38 * np.sin(2 * math.pi * i / 150 + p1) + 0.03 * np.sin(2 * math.pi * i / 23 + p2))


def drive_arc_lengths(seed: int, frames: int, mean_step: float) -> np.ndarray:
    """Arc length s of the camera at every frame (s = 0 at frame 0)."""
    return np.concatenate([[0.0], np.cumsum(drive_speeds(seed, frames, mean_step))[:-1]])


def scene_chunks(seed: int, frames: int, mean_step: float) -> int:
    """Chunks of scenery a drive of `frames` frames needs (the route plus LOOKAHEAD)."""
    s_last = float(drive_arc_lengths(seed, frames, mean_step)[-1]) if frames > 0 else 0.0
    return max(1, math.ceil((s_last + LOOKAHEAD) / CHUNK))


def drive_pose(path: DrivePath, s: float, index: int) -> np.ndarray:
    """T_world_cam at arc length s: heading along the road, a little pitch and roll (suspension), none at frame 0."""
    x, z, h = path.at(s)
    pitch = math.radians(0.3) * math.sin(2 * math.pi * index / 27)
    roll = math.radians(0.2) * math.sin(2 * math.pi * index / 41)
    T = np.eye(4)
    T[:3, :3] = rot_y(float(h)) @ rot_x(pitch) @ rot_z(roll)
    T[:3, 3] = [float(x), 0.0, float(z)]
    return T


def drive_trajectory(seed: int, frames: int, mean_step: float) -> list[np.ndarray]:
    """T_world_cam of every frame of the drive (the identity at frame 0)."""
    s = drive_arc_lengths(seed, frames, mean_step)
    path = drive_path(seed, scene_chunks(seed, frames, mean_step) * CHUNK)
    return [drive_pose(path, float(s[i]), i) for i in range(frames)]


# ---------------------------------------------------------------------------------------------------- objects
@dataclass
class _Piece:
    """A rectangle of the scenery and the texture it wants (made into a Quad once the atlas is packed)."""

    origin: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    kind: str  # texture generator: facade | wall | foliage | trunk | car_side | car_end | car_top | glass | far
    rho: float  # texels per metre
    params: dict = field(default_factory=dict)
    two_sided: bool = False


def _wall(a, b, outward, top: float, bottom: float, kind: str, rho: float, two_sided=False, **params) -> _Piece:
    """Vertical rectangle over the ground segment a-b (world x, z), seen from the `outward` side (x, z).

    Texture rows run down (v = +y), columns left to right as seen from that side, so facades stand upright.
    """
    a, b, t = np.asarray(a, float), np.asarray(b, float), np.asarray(outward, float)
    u_dir = np.array([t[1], -t[0]])  # (0, 1, 0) x t, in (x, z): right as seen from the outward side
    if (b - a) @ u_dir < 0:
        a, b = b, a
    origin = np.array([a[0], top, a[1]])
    return _Piece(origin, np.array([b[0] - a[0], 0.0, b[1] - a[1]]), np.array([0.0, bottom - top, 0.0]), kind, rho,
                  params, two_sided)


def _block(centre, heading: float, length: float, width: float, top: float, bottom: float, kinds: dict,
           rho: float, params: dict | None = None) -> list[_Piece]:
    """Make a box standing on its footprint (centre x, z; length along `heading`): four walls and a top, outward."""
    c = np.asarray(centre, float)
    f = np.array([math.sin(heading), math.cos(heading)]) * length / 2  # forward half-edge (x, z)
    r = np.array([math.cos(heading), -math.sin(heading)]) * width / 2  # right half-edge
    fl, fr, bl, br = c + f - r, c + f + r, c - f - r, c - f + r
    params = params or {}
    pieces = []
    for (a, b, out, key) in ((fl, fr, f, "fore"), (bl, br, -f, "aft"), (fl, bl, -r, "left"), (fr, br, r, "right")):
        if kinds.get(key):
            pieces.append(_wall(a, b, out / np.linalg.norm(out), top, bottom, kinds[key], rho,
                                side=key, length=float(np.linalg.norm(b - a)), height=bottom - top, **params))
    if kinds.get("top"):  # u along forward, v along right: u x v points up (-y), towards a viewer above
        o = np.array([bl[0], top, bl[1]])
        pieces.append(_Piece(o, np.array([2 * f[0], 0, 2 * f[1]]), np.array([2 * r[0], 0, 2 * r[1]]), kinds["top"],
                             rho, dict(params)))
    return pieces


def _car_pieces(centre, heading: float, params: dict) -> list[_Piece]:
    """Body and cabin boxes of a car (4.3 x 1.8 x 1.5 m) standing on the road at centre (x, z)."""
    g = CAMERA_HEIGHT
    body = _block(centre, heading, 4.3, 1.8, g - 1.0, g - 0.3,
                  {"fore": "car_end", "aft": "car_end", "left": "car_side", "right": "car_side", "top": "car_top"},
                  30.0, params)
    back = -0.25  # the cabin sits a little behind the middle
    cc = np.asarray(centre, float) + back * np.array([math.sin(heading), math.cos(heading)])
    cabin = _block(cc, heading, 2.3, 1.6, g - 1.48, g - 1.0,
                   {"fore": "glass", "aft": "glass", "left": "glass", "right": "glass", "top": "car_top"}, 30.0,
                   params)
    return body + cabin


def _side_objects(path: DrivePath, rng: np.random.Generator, s0: float, s1: float, side: int) -> list[_Piece]:
    """Place buildings, trees, hedges and gaps along one side (side +1 right, -1 left) of the road from s0 to s1."""
    pieces = []
    s = s0 + rng.uniform(0, 8)
    while s < s1:
        kind = rng.choice(["building", "trees", "hedge", "gap"], p=[0.45, 0.25, 0.1, 0.2])
        if kind == "building":
            length = rng.uniform(8, 25)
            d = rng.uniform(WALK + 0.5, 18) if rng.random() < 0.8 else rng.uniform(18, 30)
            depth, height = rng.uniform(8, 15), rng.uniform(6, 18)
            sm = s + length / 2
            x, z, h = path.at(sm)
            cx, cz = path.point(sm, side * (d + depth / 2))
            params = dict(tone=rng.uniform(90, 200), seed=int(rng.integers(1 << 30)))
            # the fore/aft (ends) are across the road, left/right along it: the road side gets windows
            near = "left" if side > 0 else "right"
            kinds = {"fore": "facade", "aft": "facade", near: "facade"}
            pieces += _block((cx, cz), float(h), length, depth, CAMERA_HEIGHT - height, CAMERA_HEIGHT, kinds, 24.0,
                             params)
            s += length + rng.uniform(0.0, 12.0)
        elif kind == "trees":
            for _ in range(int(rng.integers(2, 7))):
                d = rng.uniform(6.3, 7.5) if rng.random() < 0.7 else rng.uniform(9, 14)
                size, height = rng.uniform(2.5, 5.5), rng.uniform(5, 11)
                x, z, h = path.at(s)
                cx, cz = path.point(s, side * d)
                yaw = float(h) + rng.uniform(-0.6, 0.6)
                params = dict(tone=rng.uniform(55, 110), seed=int(rng.integers(1 << 30)))
                crown = CAMERA_HEIGHT - rng.uniform(2.2, 3.2)
                pieces += _block((cx, cz), yaw, size, size * rng.uniform(0.7, 1.0), CAMERA_HEIGHT - height, crown,
                                 {k: "foliage" for k in ("fore", "aft", "left", "right")}, 30.0, params)
                for a in (yaw, yaw + math.pi / 2):  # trunk: two crossed two-sided strips
                    half = 0.18 * np.array([math.cos(a), -math.sin(a)])
                    c = np.array([cx, cz])
                    pieces.append(_wall(c - half, c + half, np.array([math.sin(a), math.cos(a)]), crown - 0.3,
                                        CAMERA_HEIGHT, "trunk", 40.0, two_sided=True,
                                        tone=rng.uniform(40, 90), seed=int(rng.integers(1 << 30))))
                s += rng.uniform(5, 12)
        elif kind == "hedge":
            length = rng.uniform(6, 30)
            d = rng.uniform(WALK + 0.3, 10)
            sm = s + length / 2
            x, z, h = path.at(sm)
            cx, cz = path.point(sm, side * (d + 0.4))
            params = dict(tone=rng.uniform(50, 100), seed=int(rng.integers(1 << 30)))
            pieces += _block((cx, cz), float(h), length, 0.8, CAMERA_HEIGHT - rng.uniform(0.9, 1.9), CAMERA_HEIGHT,
                             {k: "foliage" for k in ("fore", "aft", "left", "right", "top")}, 30.0, params)
            s += length + rng.uniform(1, 6)
        else:
            s += rng.uniform(8, 40)
    return pieces


def _parked_cars(path: DrivePath, rng: np.random.Generator, s0: float, s1: float) -> list[_Piece]:
    """Rows of cars on both parking strips (static scenery)."""
    pieces = []
    for side in (1, -1):
        s = s0 + rng.uniform(0, 20)
        while s < s1:
            if rng.random() < 0.55:
                x, z, h = path.at(s)
                cx, cz = path.point(s, side * 4.5 + rng.uniform(-0.15, 0.15))
                yaw = float(h) + rng.uniform(-0.05, 0.05) + (math.pi if rng.random() < 0.5 else 0.0)
                pieces += _car_pieces((cx, cz), yaw, _car_params(rng))
                s += rng.uniform(5.0, 7.0)
            else:
                s += rng.uniform(6, 30)
    return pieces


def _car_params(rng: np.random.Generator) -> dict:
    return dict(tone=float(rng.choice([rng.uniform(20, 60), rng.uniform(90, 160), rng.uniform(190, 235)])),
                seed=int(rng.integers(1 << 30)))


def _mid_objects(path: DrivePath, rng: np.random.Generator, s0: float, s1: float) -> list[_Piece]:
    """Place buildings and tree lines 40-120 m from the road: points with moderate parallax."""
    pieces = []
    for side in (1, -1):
        s = s0 + rng.uniform(0, 30)
        while s < s1:
            length = rng.uniform(20, 60)
            d = rng.uniform(40, 120)
            sm = s + length / 2
            x, z, h = path.at(sm)
            a, b = (np.array(path.point(t, side * d)) for t in (s, s + length))
            c = 0.5 * (a + b)
            _, dist = _nearest_path_distance(path, np.array([a, b, c]))
            if dist.min() > 30:  # on a curve the far side can come near the road again: drop those
                toward = np.array([float(x), float(z)]) - c
                pieces.append(_wall(a, b, toward / np.linalg.norm(toward), CAMERA_HEIGHT - rng.uniform(8, 25),
                                    CAMERA_HEIGHT, "far", 6.0, tone=rng.uniform(80, 170),
                                    seed=int(rng.integers(1 << 30))))
            s += length + rng.uniform(10, 60)
    return pieces


def _nearest_path_distance(path: DrivePath, pts: np.ndarray):
    dist, idx = path.tree().query(np.asarray(pts, float).reshape(-1, 2))
    return idx, dist


def _ring(path: DrivePath, rng: np.random.Generator) -> tuple[list[_Piece], np.ndarray, float]:
    """Make the far backdrop: a closed ring of walls 250-450 m outside the route (centre and radius returned)."""
    pts = np.c_[path.x, path.z]
    centre = 0.5 * (pts.min(0) + pts.max(0))
    radius = float(np.linalg.norm(pts - centre, axis=1).max()) + 250.0
    n = 72
    angles = np.arange(n) * 2 * math.pi / n
    radii = radius + rng.uniform(0, 200, n)
    verts = centre + radii[:, None] * np.c_[np.cos(angles), np.sin(angles)]
    pieces = []
    for i in range(n):
        a, b = verts[i], verts[(i + 1) % n]
        inward = centre - 0.5 * (a + b)
        pieces.append(_wall(a, b, inward / np.linalg.norm(inward), CAMERA_HEIGHT - rng.uniform(15, 70),
                            CAMERA_HEIGHT, "far", 1.5, tone=rng.uniform(90, 160), seed=int(rng.integers(1 << 30))))
    return pieces, centre, float(radii.max())


# ---------------------------------------------------------------------------------------------------- textures
def _noise_img(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise in about [-1, 1], features about `cell` texels apart."""
    small = rng.uniform(-1, 1, (max(2, int(h / cell) + 2), max(2, int(w / cell) + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _texture(piece: _Piece, h: int, w: int) -> np.ndarray:
    """Grey texture (h x w float32, margin included) for a piece; rows down, columns right as seen."""
    p = piece.params
    rng = np.random.default_rng(p.get("seed", 0))
    rho, m = piece.rho, MARGIN
    tone = float(p.get("tone", 128))
    kind = piece.kind
    img = np.full((h, w), tone, np.float32)

    def rect(x0, y0, x1, y1, val):  # metres from the interior's top-left corner
        c0, r0 = int(round(m + x0 * rho)), int(round(m + y0 * rho))
        c1, r1 = int(round(m + x1 * rho)), int(round(m + y1 * rho))
        img[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = val

    width_m, height_m = (w - 2 * m) / rho, (h - 2 * m) / rho
    if kind in ("facade", "wall"):
        img += 10 * _noise_img(rng, h, w, 4 * rho) + 3 * rng.standard_normal((h, w)).astype(np.float32)
        ground_floor = rng.uniform(3.3, 4.5)
        storey = rng.uniform(2.8, 3.4)
        pitch = rng.uniform(2.2, 3.6)
        win_w, win_h = rng.uniform(0.9, min(1.6, pitch - 0.6)), rng.uniform(1.2, 1.7)
        frame = tone + rng.choice([-45.0, 45.0])
        glass = rng.uniform(25, 70)
        offset = rng.uniform(0.3, pitch)
        y_top = height_m - ground_floor  # storeys above the ground floor, counted from the bottom
        for k in range(int(y_top // storey)):
            y0 = height_m - ground_floor - (k + 1) * storey + (storey - win_h) * 0.55
            rect(0, y0 + win_h + 0.25, width_m, y0 + win_h + 0.4, tone + 15)  # sill band
            x = offset
            while x + win_w < width_m - 0.3:
                rect(x - 0.08, y0 - 0.08, x + win_w + 0.08, y0 + win_h + 0.08, frame)
                u = rng.random()
                val = glass + rng.uniform(-15, 40) if u < 0.8 else (rng.uniform(120, 180) if u < 0.9 else tone - 30)
                rect(x, y0, x + win_w, y0 + win_h, val)
                if u < 0.8:  # a reflection gradient in the glass
                    c0, r0 = int(round(m + x * rho)), int(round(m + y0 * rho))
                    c1, r1 = int(round(m + (x + win_w) * rho)), int(round(m + (y0 + win_h) * rho))
                    if r1 > r0 and c1 > c0:
                        img[r0:r1, c0:c1] += np.linspace(25, 0, r1 - r0, dtype=np.float32)[:, None]
                x += pitch
        x = rng.uniform(0.5, 3.0)  # ground floor: shop windows and doors
        while x < width_m - 1.0:
            wide = rng.uniform(1.0, 3.0)
            rect(x, height_m - ground_floor + 0.6, min(x + wide, width_m - 0.2), height_m - 0.1 * rng.random(),
                 rng.uniform(20, 90))
            x += wide + rng.uniform(0.8, 3.0)
        rect(0, height_m - ground_floor, width_m, height_m - ground_floor + 0.3, tone - 25)  # ground-floor band
        blur = 0.8
    elif kind == "foliage":  # clumps of leaves with dark gaps: busy, high-frequency texture
        clumps = _noise_img(rng, h, w, 0.35 * rho)
        leaves = _noise_img(rng, h, w, 0.08 * rho)
        img += 38 * np.tanh(2.5 * clumps) + 18 * leaves + 5 * rng.standard_normal((h, w)).astype(np.float32)
        blur = 0.8
    elif kind == "trunk":
        img += 14 * _noise_img(rng, h, w, 0.1 * rho) + 6 * rng.standard_normal((h, w)).astype(np.float32)
        blur = 0.8
    elif kind in ("car_side", "car_end", "car_top", "glass"):
        img += 4 * _noise_img(rng, h, w, 1.0 * rho)
        if kind == "glass":
            img[:] = 35 + 12 * _noise_img(rng, h, w, 0.8 * rho)
            rect(0, 0, width_m, 0.06, tone)  # roof edge
            if p.get("side") in ("left", "right"):  # pillar between the side windows
                rect(width_m * 0.45, 0, width_m * 0.45 + 0.12, height_m, tone)
        elif kind == "car_side":
            img += np.linspace(18, -18, h, dtype=np.float32)[:, None]  # light from above
            for xc in (0.75, width_m - 0.75):  # wheels and arches
                cv2.circle(img, (int((m + xc * rho) * 16), int((m + height_m * rho) * 16)), int(0.42 * rho * 16),
                           22.0, -1, cv2.LINE_AA, 4)
                cv2.circle(img, (int((m + xc * rho) * 16), int((m + height_m * rho) * 16)), int(0.2 * rho * 16),
                           120.0, -1, cv2.LINE_AA, 4)
            rect(0.9, 0.35, width_m - 0.9, 0.38, tone - 30)  # door line
            rect(width_m * 0.48, 0.05, width_m * 0.48 + 0.02, height_m - 0.1, tone - 30)
        elif kind == "car_end":
            rect(0.1, 0.1, 0.45, 0.3, 200 if p.get("side") == "fore" else 70)  # lights
            rect(width_m - 0.45, 0.1, width_m - 0.1, 0.3, 200 if p.get("side") == "fore" else 70)
            rect(width_m / 2 - 0.26, 0.35, width_m / 2 + 0.26, 0.47, 220)  # number plate
            rect(0, height_m - 0.15, width_m, height_m, 30)  # bumper
        blur = 0.7
    else:  # far: hills, tree lines and skyline, in haze (low contrast)
        img += 14 * _noise_img(rng, h, w, 6 * rho) + 8 * _noise_img(rng, h, w, 1.5 * rho)
        for _ in range(int(width_m / 6)):
            x0, bw = rng.uniform(0, width_m), rng.uniform(2, 12)
            top = rng.uniform(0.1, 0.7) * height_m
            rect(x0, top, x0 + bw, height_m, tone + rng.uniform(-30, 30))
        blur = 1.0
    return cv2.GaussianBlur(img, (0, 0), blur)


def _pack_aligned(sizes: list[tuple[int, int]], width: int = 4096, align: int = 16) -> tuple[list[tuple], int]:
    """Shelf-pack tiles (w, h, margins included), tallest first; corners on multiples of `align` (mip levels)."""
    def up(v):
        return -(-v // align) * align
    x = y = shelf = 0
    spots = [(0, 0)] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i][1]):
        w, h = sizes[i]
        if x + up(w) > width:
            x, y, shelf = 0, y + shelf, 0
        spots[i] = (x, y)
        x += up(w)
        shelf = max(shelf, up(h))
    return spots, up(y + shelf)


def _pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    """Mip levels 0..levels of a uint8 image (2x2 box averages; sizes must divide by 2**levels)."""
    pyr = [img]
    for _ in range(levels):
        a = pyr[-1]
        pyr.append(cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA))
    return pyr


# ---------------------------------------------------------------------------------------------------- the ground
@dataclass
class _Marks:
    """Patches (repaired asphalt) and manholes, in road coordinates, for the whole route."""

    patches: np.ndarray  # N x 5: s0, s1, d0, d1, delta grey
    holes: np.ndarray  # N x 3: s, d, radius


def _road_marks(seed: int, chunks: int) -> _Marks:
    patches, holes = [], []
    for k in range(chunks):
        rng = np.random.default_rng([seed, 4, k])
        for _ in range(int(rng.integers(6, 14))):
            s0 = k * CHUNK + rng.uniform(0, CHUNK)
            d0 = rng.uniform(-KERB, KERB - 0.5)
            patches.append((s0, s0 + rng.uniform(0.6, 6), d0, min(d0 + rng.uniform(0.5, 3.5), KERB),
                            rng.choice([-1, 1]) * rng.uniform(6, 16)))
        for _ in range(int(rng.integers(2, 6))):
            holes.append((k * CHUNK + rng.uniform(0, CHUNK), rng.uniform(-3, 3), 0.32))
    return _Marks(np.array(patches).reshape(-1, 5), np.array(holes).reshape(-1, 3))


def _octaves(seed: int, xs: np.ndarray, zs: np.ndarray, texel: float, octaves) -> np.ndarray:
    """Sum value-noise octaves (salt, spacing m, amplitude) on a grid.

    Octaves finer than 2 texels are left out (they would alias; their mean is zero).
    """
    out = np.zeros((len(zs), len(xs)), np.float32)
    for salt, spacing, amp in octaves:
        if spacing >= 2 * texel:
            out += amp * _value_noise(seed, salt, xs, zs, spacing)
    return out


def _ground_values(seed: int, marks: _Marks, xs: np.ndarray, zs: np.ndarray, s: np.ndarray, d: np.ndarray,
                   texel: float) -> np.ndarray:
    """Road texture on the grid xs x zs (texel centres, metres), band-limited to `texel`; result [z, x] float32.

    s, d: road coordinates of the grid (|d| >= 1e3 far from the road). Everything here is a function of world
    position and `texel` only, so fine tiles and the overviews agree where they overlap.
    """
    img = 100 + _octaves(seed, xs, zs, texel, ((10, 60.0, 18), (11, 15.0, 10), (12, 7.0, 5), (13, 1.6, 3)))
    near = np.abs(d) < WALK + 1
    if not near.any():
        return img
    # the road's cross-section and its features, evaluated only near the road (flat arrays of those texels)
    zi, xi = np.nonzero(near)
    s, d = s[near].astype(np.float64), d[near].astype(np.float64)
    field_tone = img[near]
    # Asphalt as a car camera sees it: tone swings over metres, and at 5-40 cm the stains, tar seams and
    # aggregate that give real roads most of their corners within 15 m of the camera (the road close by is where
    # monocular driving gets its parallax, and where points leave the view within a few frames).
    asph_tone = _octaves(seed, xs, zs, texel, ((14, 25.0, 7), (16, 0.4, 16), (17, 0.16, 14), (18, 0.07, 10)))
    wear_map = _octaves(seed, xs, zs, texel, ((15, 1.5, 0.35),))
    ad = np.abs(d)
    w = texel
    asphalt = _cover(ad, -1.0, KERB, w)
    kerb = _cover(ad, KERB, KERB_STONE, w)
    walk = _cover(ad, KERB_STONE, WALK, w)
    verge = _cover(ad, WALK, 1e9, w)
    low = field_tone - 100  # the low-frequency tone variation, on every surface
    val = (90 + asph_tone[zi, xi]) * asphalt + 168 * kerb + 140 * walk + 0.3 * low * (1 - verge) \
        + field_tone * verge
    wear = np.clip(0.75 + wear_map[zi, xi], 0.3, 1.0)
    lines = (_cover(d, -0.06, 0.06, w) * _periodic_cover(s, 9.0, 3.0, w)
             + _cover(d, LANE_EDGE - 0.2, LANE_EDGE - 0.08, w) + _cover(d, -LANE_EDGE + 0.08, -LANE_EDGE + 0.2, w))
    val += 100 * wear * lines
    val -= 35 * _cover(ad, KERB - 0.06, KERB, w)  # the kerb's shadow
    joints = np.maximum(_periodic_cover(s, 0.6, 0.02, w), _periodic_cover(d, 0.6, 0.02, w))
    val -= 20 * walk * joints
    s_lo, s_hi = float(s.min()) - 1, float(s.max()) + 1
    for s0, s1, d0, d1, delta in marks.patches:
        if s1 > s_lo and s0 < s_hi:
            sel = np.flatnonzero((s > s0 - w) & (s < s1 + w) & (d > d0 - w) & (d < d1 + w))
            val[sel] += delta * _cover(s[sel], s0, s1, w) * _cover(d[sel], d0, d1, w)
    for sc, dc, r in marks.holes:
        if s_lo - 1 < sc < s_hi + 1:
            sel = np.flatnonzero((np.abs(s - sc) < r + w) & (np.abs(d - dc) < r + w))
            dist = np.hypot(s[sel] - sc, d[sel] - dc)
            val[sel] += -28 * _cover(dist, -1.0, r, w) + 30 * _cover(dist, r - 0.06, r - 0.03, w)
    img[near] = val
    return img


def _grain(seed: int, gx: np.ndarray, gz: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Fine zero-mean detail at GROUND_TEXEL: asphalt grain and stones, sidewalk and grass grain."""
    white = _hash01(seed, 20, gx[None, :], gz[:, None]) - 0.5
    stones = _hash01(seed, 21, gx[None, :], gz[:, None])
    sign = _hash01(seed, 22, gx[None, :], gz[:, None]) < 0.5
    ad = np.abs(d)
    amp = np.where(ad < KERB, 30.0, np.where(ad < WALK, 20.0, 34.0)).astype(np.float32)
    img = amp * white + np.where(stones < 0.012, np.where(sign, 60.0, -60.0), 0.0).astype(np.float32)
    return cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.8)


class _Ground:
    """The road plane's texture: two overview pyramids and a lazily filled atlas of fine tiles.

    The near overview (OVERVIEW_TEXEL) covers the route and 120 m around it, the far one (8 x coarser) the whole
    ring; the fine tiles the corridor within FINE_HALF_WIDTH of the centre line, wherever a pixel needs texels
    finer than the overview's.
    """

    FAR = 8  # far overview texel / near overview texel

    def __init__(self, seed: int, path: DrivePath, marks: _Marks, near_box, far_box):
        self.seed, self.path, self.marks = seed, path, marks
        tile_m = GROUND_TILE * GROUND_TEXEL
        lo, hi = (np.asarray(v, float) for v in near_box)
        self.origin = np.floor(lo / tile_m) * tile_m  # world (x, z) of texel corner (0, 0) of both grids
        n_tiles = np.ceil((hi - self.origin) / tile_m).astype(int)
        per_tile = int(round(tile_m / OVERVIEW_TEXEL))  # overview texels per tile side (32)
        nx, nz = n_tiles * per_tile
        xs = self.origin[0] + (np.arange(nx) + 0.5) * OVERVIEW_TEXEL
        zs = self.origin[1] + (np.arange(nz) + 0.5) * OVERVIEW_TEXEL
        # road coordinates on a 1.6 m sub-grid, interpolated (the road bends by millimetres over 1.6 m)
        sub = 4
        gx, gz = xs[::sub], zs[::sub]
        gx = np.r_[gx, gx[-1] + sub * OVERVIEW_TEXEL]
        gz = np.r_[gz, gz[-1] + sub * OVERVIEW_TEXEL]
        X, Z = np.meshgrid(gx, gz)
        s_sub, d_sub = (a.reshape(X.shape) for a in path.project(X, Z))
        pos_x, pos_z = np.arange(nx) / sub, np.arange(nz) / sub
        s = _interp_grid(s_sub, pos_x, pos_z)
        d = _interp_grid(d_sub, pos_x, pos_z)
        img = _ground_values(seed, marks, xs, zs, s, d, OVERVIEW_TEXEL)
        self.overview = self._levels(img, 3)
        self.near_size = np.array([nx, nz])
        # the far overview: fields only (the road is a line of a few texels there), the same grid corner
        flo, fhi = (np.asarray(v, float) for v in far_box)
        far_texel = OVERVIEW_TEXEL * self.FAR
        self.far_origin = self.origin - np.ceil((self.origin - flo) / (tile_m * 8)) * tile_m * 8
        fn = np.ceil((fhi - self.far_origin) / far_texel).astype(int)
        fxs = self.far_origin[0] + (np.arange(fn[0]) + 0.5) * far_texel
        fzs = self.far_origin[1] + (np.arange(fn[1]) + 0.5) * far_texel
        self.far = self._levels(_ground_values(seed, marks, fxs, fzs, np.zeros((fn[1], fn[0])),
                                               np.full((fn[1], fn[0]), 1e3), far_texel), 6)
        # fine tiles where the near overview sees the corridor
        near = np.abs(d) < FINE_HALF_WIDTH + 1.0
        self.fine = near.reshape(n_tiles[1], per_tile, n_tiles[0], per_tile).any(axis=(1, 3))  # [tile z, tile x]
        side = GROUND_TILE + 2 * MARGIN
        self.slot_grid = int(math.isqrt(MAX_SLOTS))
        self.atlas = [np.zeros((self.slot_grid * side >> k, self.slot_grid * side >> k), np.uint8)
                      for k in range(FINE_LEVELS + 1)]
        self.slots: dict = {}  # (tx, tz) -> slot index, in order of last use
        self.tiles_made = 0

    @staticmethod
    def _levels(img: np.ndarray, levels: int) -> list[np.ndarray]:
        pyr = [np.clip(np.rint(img), 0, 255).astype(np.uint8)]
        for _ in range(levels):
            a = pyr[-1]
            if min(a.shape) < 4:
                break
            pyr.append(cv2.resize(a[:a.shape[0] // 2 * 2, :a.shape[1] // 2 * 2], (a.shape[1] // 2, a.shape[0] // 2),
                                  interpolation=cv2.INTER_AREA))
        return pyr

    def _make_tile(self, tx: int, tz: int) -> np.ndarray:
        """Fine texture of tile (tx, tz) with its margin, uint8 (side x side)."""
        side = GROUND_TILE + 2 * MARGIN
        k = np.arange(side) - MARGIN  # texel index within the tile
        gx, gz = tx * GROUND_TILE + k, tz * GROUND_TILE + k  # global texel indices (hash keys)
        xs = self.origin[0] + (gx + 0.5) * GROUND_TEXEL
        zs = self.origin[1] + (gz + 0.5) * GROUND_TEXEL
        sub = 16
        px, pz = xs[::sub], zs[::sub]
        px, pz = np.r_[px, px[-1] + sub * GROUND_TEXEL], np.r_[pz, pz[-1] + sub * GROUND_TEXEL]
        X, Z = np.meshgrid(px, pz)
        s_sub, d_sub = (a.reshape(X.shape) for a in self.path.project(X, Z))
        pos = np.arange(side) / sub
        s = _interp_grid(s_sub, pos, pos)
        d = _interp_grid(d_sub, pos, pos)
        img = _ground_values(self.seed, self.marks, xs, zs, s, d, GROUND_TEXEL) + _grain(self.seed, gx, gz, d)
        self.tiles_made += 1
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)

    def slot(self, tx: int, tz: int) -> int:
        """Atlas slot of fine tile (tx, tz), made now if it is not there."""
        key = (tx, tz)
        if key in self.slots:
            self.slots[key] = self.slots.pop(key)  # most recently used last
            return self.slots[key]
        if len(self.slots) < self.slot_grid ** 2:
            index = len(self.slots)
        else:
            index = self.slots.pop(next(iter(self.slots)))  # evict the least recently used
        side = GROUND_TILE + 2 * MARGIN
        pyr = _pyramid(self._make_tile(tx, tz), FINE_LEVELS)
        r, c = divmod(index, self.slot_grid)
        for lvl, img in enumerate(pyr):
            n = side >> lvl
            self.atlas[lvl][r * n:(r + 1) * n, c * n:(c + 1) * n] = img
        self.slots[key] = index
        return index

    def sample(self, X: np.ndarray, Z: np.ndarray, lod: np.ndarray) -> np.ndarray:
        """Grey values at world points (X, Z) with level of detail `lod` (log2 of fine texels per pixel)."""
        out = np.empty(len(X), np.float32)
        tile_m = GROUND_TILE * GROUND_TEXEL
        tx = np.floor((X - self.origin[0]) / tile_m).astype(np.int64)
        tz = np.floor((Z - self.origin[1]) / tile_m).astype(np.int64)
        inside = (tx >= 0) & (tz >= 0) & (tx < self.fine.shape[1]) & (tz < self.fine.shape[0])
        fine = np.zeros(len(X), bool)
        fine[inside] = self.fine[tz[inside], tx[inside]]
        fine &= lod < FINE_LEVELS
        coarse = np.flatnonzero(~fine)
        if len(coarse):
            ox = (X[coarse] - self.origin[0]) / OVERVIEW_TEXEL
            oz = (Z[coarse] - self.origin[1]) / OVERVIEW_TEXEL
            level = lod[coarse] - FINE_LEVELS
            near = (ox >= 1) & (oz >= 1) & (ox < self.near_size[0] - 1) & (oz < self.near_size[1] - 1) & \
                (level < len(self.overview) - 1)
            i = coarse[near]
            out[i] = _trilinear(self.overview, ox[near] - 0.5, oz[near] - 0.5, np.maximum(level[near], 0.0))
            i, far = coarse[~near], ~near
            far_texel = OVERVIEW_TEXEL * self.FAR
            out[i] = _trilinear(self.far, (X[i] - self.far_origin[0]) / far_texel - 0.5,
                                (Z[i] - self.far_origin[1]) / far_texel - 0.5,
                                np.maximum(level[far] - math.log2(self.FAR), 0.0))
        if fine.any():
            idx = np.flatnonzero(fine)
            keys = tz[idx] * (1 << 20) + tx[idx]
            uniq, inv = np.unique(keys, return_inverse=True)
            side = GROUND_TILE + 2 * MARGIN
            batch = self.slot_grid ** 2 // 2  # tiles of one lookup must all be in the atlas at once
            for b0 in range(0, len(uniq), batch):
                slot_x, slot_y = np.zeros(len(uniq)), np.zeros(len(uniq))
                for j in range(b0, min(b0 + batch, len(uniq))):
                    key = int(uniq[j])
                    r, c = divmod(self.slot(key % (1 << 20), key >> 20), self.slot_grid)
                    slot_x[j], slot_y[j] = c * side, r * side
                sel = idx[(inv >= b0) & (inv < b0 + batch)]
                isel = inv[(inv >= b0) & (inv < b0 + batch)]
                ax = slot_x[isel] + MARGIN + (X[sel] - self.origin[0] - tx[sel] * tile_m) / GROUND_TEXEL - 0.5
                ay = slot_y[isel] + MARGIN + (Z[sel] - self.origin[1] - tz[sel] * tile_m) / GROUND_TEXEL - 0.5
                out[sel] = _trilinear(self.atlas, ax, ay, lod[sel])
        return out


def _trilinear(pyr: list, ax: np.ndarray, ay: np.ndarray, lod: np.ndarray) -> np.ndarray:
    """Trilinear lookup in a mip pyramid at level-0 texel coordinates (texel centres at integers)."""
    lod = np.clip(lod, 0.0, len(pyr) - 1)
    k0 = np.minimum(np.floor(lod).astype(np.int64), len(pyr) - 1)
    frac = (lod - k0).astype(np.float32)
    out = np.empty(len(ax), np.float32)
    for k in np.unique(k0).tolist():
        sel = np.flatnonzero(k0 == k)
        a = _lookup(pyr[k], ax[sel], ay[sel], k)
        if k + 1 < len(pyr):
            f = frac[sel]
            grow = f > 0
            if grow.any():
                a[grow] += f[grow] * (_lookup(pyr[k + 1], ax[sel[grow]], ay[sel[grow]], k + 1) - a[grow])
        out[sel] = a
    return out


def _lookup(img: np.ndarray, ax: np.ndarray, ay: np.ndarray, level: int) -> np.ndarray:
    """Bilinear lookup of level `level` at level-0 texel coordinates."""
    scale = 0.5 ** level
    n = len(ax)
    cols = 4096  # remap wants maps below 32767 on each side
    rows = -(-n // cols)
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n] = (ax + 0.5) * scale - 0.5
    my[:n] = (ay + 0.5) * scale - 0.5
    out = cv2.remap(img, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.ravel()[:n].astype(np.float32)


# ---------------------------------------------------------------------------------------------------- the scene
@dataclass
class DriveScene:
    """Everything of a drive that does not move, plus the textures of the moving cars."""

    seed: int
    chunks: int
    path: DrivePath
    quads: list  # static Quads (tiles in `atlas`)
    centres: np.ndarray  # N x 3 world centres of the quads (for culling)
    radii: np.ndarray  # N half-diagonals
    atlas: list  # mip pyramid of the object atlas, uint8
    ground: _Ground
    car_tiles: list = field(default_factory=list)  # per moving car: {(box, face): tile}
    car_params: list = field(default_factory=list)  # per moving car: motion parameters


@functools.lru_cache(maxsize=2)
def make_drive_scene(seed: int = 0, chunks: int = 2, cars: int = 0) -> DriveScene:
    """Build the drive scene of a seed: `chunks` x CHUNK metres of road, textures for `cars` moving cars."""
    path = drive_path(seed, chunks * CHUNK)
    pieces: list[_Piece] = []
    for k in range(chunks):
        rng = np.random.default_rng([seed, 3, k])
        s0, s1 = k * CHUNK, (k + 1) * CHUNK
        if k == 0:
            s0 = -40.0  # scenery beside the start too (seen when the road turns)
        pieces += _side_objects(path, rng, s0, s1, +1) + _side_objects(path, rng, s0, s1, -1)
        pieces += _parked_cars(path, rng, s0, s1) + _mid_objects(path, rng, s0, s1)
    ring, centre, radius = _ring(path, np.random.default_rng([seed, 5]))
    pieces += ring
    # textures of the moving cars: one set of car pieces each, laid out at the origin (posed per frame)
    car_rng = np.random.default_rng([seed, 6])
    car_params, car_sets = [], []
    for i in range(cars):
        params = _car_params(car_rng)
        car_sets.append(_car_pieces((0.0, 0.0), 0.0, params))
        car_params.append(dict(lead=(i % 2 == 0), index=i, gap=car_rng.uniform(15, 40), amp=car_rng.uniform(0, 8),
                               period=car_rng.uniform(60, 140), phase=car_rng.uniform(0, 2 * math.pi),
                               speed=car_rng.uniform(0.9, 1.4), offset=car_rng.uniform(0, 400)))
    all_pieces = pieces + [p for s in car_sets for p in s]
    sizes = []
    for p in all_pieces:
        w = max(2, int(round(np.linalg.norm(p.edge_u) * p.rho)))
        h = max(2, int(round(np.linalg.norm(p.edge_v) * p.rho)))
        sizes.append((w + 2 * MARGIN, h + 2 * MARGIN))
    spots, height = _pack_aligned(sizes)
    atlas = np.zeros((height, 4096), np.uint8)
    tiles = []
    for p, (w, h), (x0, y0) in zip(all_pieces, sizes, spots):
        atlas[y0:y0 + h, x0:x0 + w] = np.clip(np.rint(_texture(p, h, w)), 0, 255).astype(np.uint8)
        tiles.append((x0 + MARGIN, y0 + MARGIN, w - 2 * MARGIN, h - 2 * MARGIN))
    quads = [Quad(p.origin, p.edge_u, p.edge_v, tile=t, two_sided=p.two_sided) for p, t in zip(pieces, tiles)]
    car_tiles, i = [], len(pieces)
    for s in car_sets:
        car_tiles.append(tiles[i:i + len(s)])
        i += len(s)
    centres = np.array([q.origin + 0.5 * (q.edge_u + q.edge_v) for q in quads]).reshape(-1, 3)
    radii = np.array([0.5 * np.linalg.norm(q.edge_u + q.edge_v) for q in quads])
    pts = np.c_[path.x, path.z]
    near_box = (pts.min(0) - 120.0, pts.max(0) + 120.0)
    far_box = (centre - radius - 60.0, centre + radius + 60.0)
    ground = _Ground(seed, path, _road_marks(seed, chunks), near_box, far_box)
    return DriveScene(seed, chunks, path, quads, centres, radii, _pyramid(atlas, FINE_LEVELS), ground, car_tiles,
                      car_params)


def car_quads(scene: DriveScene, s_camera: float, index: int) -> list[Quad]:
    """Quads of the moving cars at frame `index` (camera at arc length s_camera).

    Car 0, 2, ...: ahead in our lane at a gap swinging smoothly (15-40 m +- up to 8 m): it moves with the camera,
    its pixels barely move, as at the focus of expansion. Car 1, 3, ...: oncoming in the other lane at 9-14 m/s,
    reappearing 300 m ahead after passing.
    """
    quads = []
    for tiles, p in zip(scene.car_tiles, scene.car_params):
        if p["lead"]:
            s = s_camera + p["gap"] + p["amp"] * math.sin(2 * math.pi * index / p["period"] + p["phase"])
            d, heading_flip = LANE_OFFSET, 0.0
        else:
            rel = (p["offset"] - (p["speed"] * index + s_camera)) % 400.0 - 100.0
            s, d, heading_flip = s_camera + rel, -LANE_OFFSET, math.pi
        x, z, h = scene.path.at(s)
        cx, cz = scene.path.point(s, d)
        for piece, tile in zip(_car_pieces((float(cx), float(cz)), float(h) + heading_flip, {}), tiles):
            quads.append(Quad(piece.origin, piece.edge_u, piece.edge_v, tile=tile))
    return quads


def drive_camera(width: int = KITTI_WIDTH, height: int = KITTI_HEIGHT) -> Camera:
    """Return KITTI's rectified camera 0 scaled to width x height (pixel centres at integer coordinates)."""
    kitti = Camera.pinhole(KITTI_WIDTH, KITTI_HEIGHT, KITTI_F, KITTI_F, KITTI_CX, KITTI_CY)
    return scale_camera(kitti, width / KITTI_WIDTH, height / KITTI_HEIGHT)


# ---------------------------------------------------------------------------------------------------- rendering
def _sky(rays_y: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Sky brightness from the elevation of the ray: a smooth gradient, no texture at all."""
    elevation = np.clip(-rays_y / norm, 0.0, 1.0)
    return 238.0 - 40.0 * np.sqrt(elevation)


def render_drive(scene: DriveScene, T_world_cam: np.ndarray, camera: Camera, moving: list | None = None):
    """Render one view: (grey uint8 HxW, depth float32 HxW metres, 0 for sky, dynamic bool HxW: moving cars)."""
    w, h = camera.width, camera.height
    K = np.asarray(camera.K, float)
    Kinv = np.linalg.inv(K)
    R, t = T_world_cam[:3, :3], T_world_cam[:3, 3]
    us = np.arange(w, dtype=np.float32)
    vs = np.arange(h, dtype=np.float32)[:, None]
    inv_depth = np.zeros((h, w), np.float32)
    owner = np.full((h, w), -1, np.int32)  # -1 sky, 0 ground, 1 static quad, 2 moving quad
    map_x = np.zeros((h, w), np.float32)
    map_y = np.zeros((h, w), np.float32)
    lod = np.zeros((h, w), np.float32)
    M = R @ Kinv  # world ray of pixel (u, v): M @ (u, v, 1)
    height_above = CAMERA_HEIGHT - t[1]

    def plane(row):
        return float(row[0]) * us + (float(row[1]) * vs + float(row[2]))

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # the road plane: inverse depth r_y / height is affine in (u, v); it is the first surface drawn
        if height_above > _NEAR:
            g = M[1] / height_above
            wz = plane(g)
            hit = wz > 0
            inv_depth[hit] = wz[hit]
            owner[hit] = 0
        # static quads that can be in view (centre within a margin of the frustum), then the cars
        cam_c = (scene.centres - t) @ R
        tan_x = max(K[0, 2], w - K[0, 2]) / K[0, 0]
        tan_y = max(K[1, 2], h - K[1, 2]) / K[1, 1]
        zc = cam_c[:, 2] + scene.radii
        ok = (zc > 0) & (np.abs(cam_c[:, 0]) - scene.radii < zc * tan_x) & \
             (np.abs(cam_c[:, 1]) - scene.radii < zc * tan_y)
        todo = [(scene.quads[i], 1) for i in np.flatnonzero(ok)] + [(q, 2) for q in (moving or [])]
        for q, who in todo:
            o, U, V = R.T @ (q.origin - t), R.T @ q.edge_u, R.T @ q.edge_v
            if not q.two_sided and cross3(U, V) @ o >= 0:
                continue
            rect = pixel_rect(np.stack([o, o + U, o + U + V, o + V]), K, w, h)
            if rect is None:
                continue
            H = quad_homography(q, o, U, V, Kinv)
            r0, r1, c0, c1 = rect
            u, v = us[c0:c1], vs[r0:r1]

            def pl(row):
                return float(row[0]) * u + (float(row[1]) * v + float(row[2]))

            wq = pl(H[2])
            zb = inv_depth[r0:r1, c0:c1]
            ax, ay = pl(H[0]) / wq, pl(H[1]) / wq
            x0, y0, tw, th = q.tile
            nearer = (wq > zb) & (ax >= x0 - 0.5) & (ax <= x0 + tw - 0.5) & (ay >= y0 - 0.5) & (ay <= y0 + th - 0.5)
            if not nearer.any():
                continue
            # footprint of the pixel in texels: derivatives of the homography
            lu = ((H[0, 0] - ax * H[2, 0]) ** 2 + (H[1, 0] - ay * H[2, 0]) ** 2) / (wq * wq)
            lv = ((H[0, 1] - ax * H[2, 1]) ** 2 + (H[1, 1] - ay * H[2, 1]) ** 2) / (wq * wq)
            level = 0.5 * np.log2(np.maximum(np.minimum(lu, lv), np.maximum(lu, lv) / ANISO ** 2))
            np.copyto(zb, wq, where=nearer)
            np.copyto(map_x[r0:r1, c0:c1], ax, where=nearer)
            np.copyto(map_y[r0:r1, c0:c1], ay, where=nearer)
            np.copyto(lod[r0:r1, c0:c1], level.astype(np.float32), where=nearer)
            np.copyto(owner[r0:r1, c0:c1], np.int32(who), where=nearer)
        grey = np.empty((h, w), np.float32)
        quad_px = owner > 0
        if quad_px.any():
            grey[quad_px] = _trilinear(scene.atlas, map_x[quad_px], map_y[quad_px], lod[quad_px])
        ground_px = owner == 0
        if ground_px.any():
            rows, cols = np.nonzero(ground_px)
            uu, vv = cols.astype(np.float64), rows.astype(np.float64)
            wz = inv_depth[ground_px].astype(np.float64)
            X = (M[0, 0] * uu + M[0, 1] * vv + M[0, 2]) / wz + t[0]
            Z = (M[2, 0] * uu + M[2, 1] * vv + M[2, 2]) / wz + t[2]
            # metres per pixel along u and v on the plane: d(X, Z)/du = (M[:, 0] - (X - t) g_0) / w
            gu, gv = M[1, 0] / height_above, M[1, 1] / height_above
            dxu, dzu = (M[0, 0] - (X - t[0]) * gu) / wz, (M[2, 0] - (Z - t[2]) * gu) / wz
            dxv, dzv = (M[0, 1] - (X - t[0]) * gv) / wz, (M[2, 1] - (Z - t[2]) * gv) / wz
            lu, lv = dxu * dxu + dzu * dzu, dxv * dxv + dzv * dzv
            level = 0.5 * np.log2(np.maximum(np.minimum(lu, lv), np.maximum(lu, lv) / ANISO ** 2)) \
                - math.log2(GROUND_TEXEL)
            grey[ground_px] = scene.ground.sample(X, Z, level)
        sky_px = owner < 0
        if sky_px.any():
            rows, cols = np.nonzero(sky_px)
            ray = M @ np.stack([cols, rows, np.ones(len(rows))])
            grey[sky_px] = _sky(ray[1], np.linalg.norm(ray, axis=0))
        depth = np.where(inv_depth > 0, 1.0 / inv_depth, 0.0).astype(np.float32)
    img = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return img, depth, owner == 2
