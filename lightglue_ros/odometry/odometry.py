"""VisualOdometry: keyframe-based pose chaining on top of the front end's matches.

Each new frame is matched (by the front end) against the current **keyframe**; this module turns those matches
into ``T_world_cam`` and decides when the frame should become the next keyframe (``OdometryResult.keyframe``: the
caller then calls ``frontend.promote()``).

What is metric and what is not:

- **RGB-D** (``use_depth``): the keyframe's keypoints are lifted with the keyframe's depth and the current frame
  is located by P3P LO-RANSAC: translations are in metres, and scale cannot drift (each step is measured).
- **Monocular**: translation is only known up to one global scale. The first keyframe pair defines it (baseline
  = 1 unit, or ``camera_height``). Each frame's rotation and translation direction come from the relative pose of
  *all* its matches against the keyframe (PoseLib LO-RANSAC), precise even where most points are new; the
  landmarks (inlier points triangulated between keyframes, stored under their persistent track ids) fix only the
  baseline length: the median ratio of stored to re-triangulated depths. PnP against the landmarks is the
  fallback where two views cannot give the motion. At a keyframe the new points are fused in inverse depth with
  the carried ones, and the last ``bundle_window`` keyframes are bundle-adjusted (`odometry.window`,
  `odometry.bundle`); the frames until the next keyframe are placed from the adjusted one. With ``camera_height``
  a ground plane fitted at each keyframe makes the scale metric (``scale_source`` says where each frame's scale
  came from). Without it poses are consistent up to one global scale (align with Sim(3) to evaluate). After a
  reset the scale of the new segment is re-seeded from the last measured speed (``speed * dt``) when there is
  one, else 1: a guess, not a measurement (the reason says so).

Rules:

- A camera that stands still must not drift: when the median inlier flow is below ``min_parallax_px`` the pose
  is held (``updated=False``), no keyframe is made, the state is unchanged and the twist is zero.
- ``lost_after`` consecutive failures -> ``LOST``; ``lost_policy`` "reset" drops the keyframe (`needs_reference`
  tells the caller to reset the front end) so the next good frame re-initialises, "hold" keeps the keyframe and
  keeps trying. While lost the pose covariance is inflated by ``lost_covariance`` on the diagonal.
- Odometry is continuous (REP-105): a reset never moves the pose; the new track starts from the last pose.
  Monocular initialisation holds the pose (``updated=False``) until the first keyframe pair has enough
  translation; that frame then places the camera where it measured it, the one step that happens before tracking
  starts. Landmarks running out while tracking (no reset) re-initialise the same way, with the speed prior.
- Poses are 4x4 float64 ``T_world_cam`` in the camera optical convention; world = the first camera frame.
  Covariances are 6x6 (x y z roll pitch yaw) in the world frame for the pose, in the camera frame for the twist.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from lightglue_ros.core.lie import invert_T, make_T, so3_log, transform
from lightglue_ros import geometry as geo
from lightglue_ros.core.config import param
from lightglue_ros.core.types import INITIALIZING, LOST, TRACKING, Camera, OdometryResult, TrackResult
from lightglue_ros.geometry import PoseConfig
from lightglue_ros.odometry.window import KeyframeWindow


# Monocular scale-propagation constants (measured on 400-frame synthetic drives with 0.5 px noise and 10% outliers:
# together they cut the scale drift over 60 m from ~15% to ~3% and the Sim(3) ATE from ~0.6% to ~0.12%).
#: Fresh landmarks and scale ratios need a translational flow of at least this many RANSAC thresholds (the
#: threshold is ~2 keypoint sigmas, so ~10 sigma: relative inverse-depth error below ~15%). Low-parallax depths
#: are noisy and truncated at zero, which biases them near. (Not the estimated sigma: PnP residuals include
#: landmark error, and a threshold that grows with them starves the map.)
MIN_FLOW_THRESHOLDS = 5.0
#: PnP uses only landmarks whose relative depth error (sigma_rho / rho) is below this when enough are left.
PNP_MAX_REL_DEPTH_ERROR = 0.1
#: Fewest landmark/triangulation pairs for the keyframe scale correction.
RESCALE_MIN_POINTS = 20
#: Where a frame's translation length comes from (OdometryResult.scale_source).
SCALE_LANDMARKS = "landmarks"  # two-view motion, baseline from the depths of tracked landmarks
SCALE_PNP = "pnp"  # PnP against the landmarks (the fallback)
SCALE_GROUND = "ground"  # landmarks, with the map rescaled so the camera sits camera_height above the ground
SCALE_DEPTH = "depth"  # RGB-D
SCALE_PRIOR = "prior"  # (re)initialised: unit baseline or the last speed, not a measurement
#: Ground candidates lie at most 1 / GROUND_NEAR camera heights ahead or behind (16.5 m for a car's 1.65 m):
#: a plane anchored on road points 25-33 m ahead, where a keyframe baseline of 2 m triangulates poorly, set
#: the scale 21 % off in the test that brings the road into view late (3 deg, the old limit, is 20 heights).
GROUND_NEAR = 0.1
#: Ground candidates lie laterally within this many times their height below the camera (a wedge of +-72 deg):
#: it leaves out walls, hedges and parked cars beside the path. Measured on the synthetic drive (lightglue, 150
#: frames): 1.2 kept too few road points at initialisation (the first keyframe's plane failed, the scale stayed
#: the prior for 35 frames), 3 anchored at the first keyframe.
GROUND_WEDGE = 3.0
#: Inlier band of the ground plane fit, a fraction of the height. Triangulated road points are noisy where the
#: baseline is short: at the first keyframe pair of the synthetic drive their depths scatter by +-5 % (measured
#: against the scene's depth), and a 5 % band found no plane there.
GROUND_BAND = 0.1
#: Inliers a ground plane needs before its fitted normal replaces the one kept from earlier fits.
GROUND_NORMAL_POINTS = 60
#: Until a normal has been fitted, the ground is searched within GROUND_SEARCH_TILT_DEG of the camera's y axis (a
#: camera mounted pitched or rolled); after, within GROUND_MAX_TILT_DEG of the fitted (the mount's) normal. With
#: the wide search only, old road behind the camera and a few points far below ahead made one sloped "plane" of 94
#: points, which then replaced the mount's normal (test_odometry, the small-plane test).
GROUND_SEARCH_TILT_DEG = 25.0
GROUND_MAX_TILT_DEG = 5.0
#: Once a map's scale is ground-anchored, a plane with fewer inliers than GROUND_TRUST_POINTS that disagrees with
#: it by more than GROUND_MAX_DISAGREEMENT is ignored (on the 350-frame drive two 16-17 point planes 2.8x off
#: dragged the scale 50 % low for 30 frames).
GROUND_TRUST_POINTS = 30
GROUND_MAX_DISAGREEMENT = 1.25
#: Share (in log scale) of the ground-plane scale error corrected at each keyframe after the first.
GROUND_GAIN = 0.25
# A keyframe candidate without valid depth at enough of its keypoints (RGB-D): refused, the next frame seeds.
REASON_SEED_DEPTH = "no valid depth at the keyframe's keypoints"


@dataclass
class OdometryConfig(PoseConfig):
    """Odometry settings: the two-view estimator's (`PoseConfig`, inherited) plus keyframes, loss and depth."""

    # A new keyframe when the fraction of keyframe points still matched drops below (the base is the most
    # matches any frame had against this keyframe), or inliers drop below, or the median parallax grows past.
    keyframe_min_tracked: float = param(0.5, "New keyframe when the fraction of keyframe points still matched "
                                        "drops below.", lo=0.0, hi=1.0)
    keyframe_min_inliers: int = param(80, "New keyframe when inliers drop below.", lo=0, hi=100000)
    keyframe_max_parallax_px: float = param(30.0, "New keyframe when the median parallax grows past (px).",
                                            lo=0.0, hi=10000.0)
    lost_after: int = param(5, "Consecutive failed frames before the state becomes lost.", lo=1, hi=100000)
    lost_policy: str = param("reset", "When lost: reset (re-initialise from the next good frame) or hold (keep "
                             "the keyframe).", choices=("reset", "hold"))
    # Inflated on purpose while lost, so a fusion filter stops trusting the estimate (documented in the README).
    lost_covariance: float = param(1.0e3, "Variance put on the pose covariance diagonal while lost (m^2, rad^2).",
                                   lo=0.0, hi=1e12)
    use_depth: bool = param(False, "RGB-D metric mode (the node's use_depth).")
    min_depth: float = param(0.1, "Nearest valid depth (m).", lo=0.0, hi=1000.0)
    max_depth: float = param(20.0, "Farthest valid depth (m).", lo=0.0, hi=1000.0)
    depth_interpolation: str = param("nearest", "Depth lookup at keypoints: nearest or bilinear.",
                                     choices=("nearest", "bilinear"))
    init_min_parallax_px: float = param(10.0, "Monocular: rotation-compensated flow needed to initialise (px).",
                                        lo=0.0, hi=10000.0)
    camera_height: float = param(0.0, "Monocular ground robots: camera height above the ground (m; 0 = off). At "
                                 "each keyframe a plane fitted to the window's points below the camera (within 10 "
                                 "heights) sets the scale so the camera sits this high: metric monocular odometry. "
                                 "Needs a rigid mount and roughly flat, textured ground in view.", lo=0.0, hi=100.0)
    bundle_window: int = param(7, "Monocular: keyframes refined together by the windowed bundle adjustment at each "
                               "keyframe (Ceres, robust loss, the oldest keyframe fixed); 0 = off.", lo=0, hi=30)
    bundle_max_points: int = param(500, "Monocular: most points in one adjustment (0 = all), spread over the image, "
                                   "those seen by the most keyframes first. Its cost grows with them: on TUM frames "
                                   "1 s apart (a keyframe at each) 500 of ~1270 cut the pose stage from 47 to 29 ms "
                                   "per frame at the same ATE.", lo=0, hi=100000)


@dataclass
class _Keyframe:
    pose: np.ndarray  # T_world_kf
    cov: np.ndarray  # 6x6 world covariance of the keyframe pose
    stamp: Optional[float]
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # landmark track ids (monocular)
    xyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # landmarks in the keyframe frame
    var: np.ndarray = field(default_factory=lambda: np.zeros(0))  # inverse-depth variance of each landmark
    depth: Optional[np.ndarray] = None  # float32 metres (RGB-D)
    max_matches: int = 0  # most matches any frame had against this keyframe (the "tracked fraction" base)


@dataclass
class _Step:
    """One frame's estimate relative to the keyframe, before bookkeeping."""

    T_kf_cur: np.ndarray
    cov: np.ndarray  # 6x6, keyframe frame
    inliers: int
    parallax_px: float
    reason: str = ""
    trans_parallax_px: float = float("inf")  # rotation-compensated median flow (what a new keyframe triangulates)
    scale_source: str = ""  # where the translation length came from (SCALE_*)


def _unique(ids: np.ndarray) -> np.ndarray:
    """Return True for ids that occur once (a track matched twice is ambiguous: drop it from the map)."""
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return counts[inverse] == 1


@dataclass
class GroundPlane:
    """A ground fit in the camera frame: its RANSAC inliers and the normal refitted to them (pointing down)."""

    points: np.ndarray  # (N, 3) inliers
    normal: np.ndarray  # (3,) unit

    @property
    def inliers(self) -> int:
        return len(self.points)

    def height(self, normal: Optional[np.ndarray] = None) -> float:
        """Median distance of the inliers along ``normal`` (the fitted one when None).

        A normal fitted to a few dozen noisy points tilts by a degree or two, which moves the distance of points
        10 m ahead by 10-20 %, so the caller may pass a better one (the mount's, known from earlier fits). The
        median: one far point with a wrong depth moves it little.
        """
        n = self.normal if normal is None else np.asarray(normal, np.float64) / np.linalg.norm(normal)
        return float(np.median(np.abs(self.points @ n)))


def ground_plane(xyz: np.ndarray, min_points: int = 15, iterations: int = 200, seed: int = 0,
                 normal: Optional[np.ndarray] = None,
                 max_tilt_deg: float = GROUND_SEARCH_TILT_DEG) -> Optional[GroundPlane]:
    """Fit the ground plane under the camera to points in the camera frame; None when there is none.

    Candidates are the points in the wedge below the camera where the ground in front of (or behind) a ground
    robot is: within 1 / GROUND_NEAR camera heights ahead or behind (farther, triangulated depths are too
    imprecise) and laterally within GROUND_WEDGE of their depth below the camera, which leaves out most of the
    parked cars, kerbs and walls beside the path. Then RANSAC over 3-point planes whose normal lies within
    ``max_tilt_deg`` of ``normal`` (default: the camera's y axis, down in the optical frame), with an inlier band
    of GROUND_BAND of the candidate height, and a least-squares refit of the normal on the inliers. None when
    fewer than ``min_points`` points support a plane (no ground in view: sky, a wall, a car filling the image).
    """
    X = np.asarray(xyz, np.float64).reshape(-1, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = (np.isfinite(X).all(axis=1) & (X[:, 1] > GROUND_NEAR * np.abs(X[:, 2]))
                 & (np.abs(X[:, 0]) < GROUND_WEDGE * X[:, 1]))
    X = X[below]
    if len(X) < min_points:
        return None
    rng = np.random.default_rng(seed)
    best, best_n = None, 0
    cos_max = np.cos(np.radians(max_tilt_deg))
    ref = np.array([0.0, 1.0, 0.0]) if normal is None else np.asarray(normal, np.float64) / np.linalg.norm(normal)
    for _ in range(iterations):
        a, b, c = X[rng.choice(len(X), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-12 or abs(n @ ref) / norm < cos_max:
            continue
        n /= norm
        d = -n @ a
        if abs(d) < 1e-9:
            continue
        inl = np.abs(X @ n + d) < GROUND_BAND * abs(d)
        if inl.sum() > best_n:
            best, best_n = inl, int(inl.sum())
    if best is None or best_n < min_points:
        return None
    P = X[best]
    fitted = np.linalg.svd(P - P.mean(axis=0))[2][-1]
    return GroundPlane(P, fitted if fitted[1] > 0 else -fitted)


class VisualOdometry:
    """``update(track, camera, depth=None) -> OdometryResult``; ``reset(reason)``; ``state``; ``pose``."""

    def __init__(self, config: Optional[OdometryConfig] = None):
        self.config = config or OdometryConfig()
        if self.config.lost_policy not in ("reset", "hold"):
            raise ValueError(f"lost_policy must be 'reset' or 'hold', got '{self.config.lost_policy}'")
        self._pose = np.eye(4)
        self._cov = np.zeros((6, 6))
        self._state = INITIALIZING
        self._reason = "no frame yet"
        self._kf: Optional[_Keyframe] = None
        self._fails = 0
        self._last_stamp: Optional[float] = None  # stamp of the last frame with a pose (updated or held)
        self._last_rel_cov = np.zeros((6, 6))
        self._velocity = np.zeros(6)
        self._twist_cov = np.eye(6) * self.config.lost_covariance
        self._speed: Optional[float] = None  # monocular units per second, for re-seeding scale after a reset
        self._last_step: Optional[float] = None  # last keyframe-to-keyframe translation length
        # (track ids, undistorted pixels) of the last frame whose pose was estimated; None = the keyframe itself.
        self._anchor: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._last_failed = False
        self._scale_source = ""  # SCALE_GROUND once camera_height has set the scale of the current map
        self._ground_anchored = False  # a ground plane has set the scale of the current map (camera_height)
        self._init_wait: Optional[tuple] = None  # (seed keyframe, parallax px) of the last frame waiting for parallax
        # The ground's normal in the camera frame (a rigid mount keeps it): the y axis until a plane with
        # GROUND_NORMAL_POINTS inliers has been fitted.
        self._ground_normal = np.array([0.0, 1.0, 0.0])
        self._ground_normal_fitted = False
        # The monocular keyframes of the windowed adjustment.
        self._window = KeyframeWindow(self.config.bundle_window, self.config.bundle_max_points)

    # ---- public state ---------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def pose(self) -> np.ndarray:
        return self._pose.copy()

    @property
    def covariance(self) -> np.ndarray:
        return self._cov.copy()

    @property
    def failed(self) -> bool:
        """True when the last `update` produced no estimate because something failed; the reason is in `reason`."""
        return self._last_failed

    @property
    def needs_reference(self) -> bool:
        """True when there is no keyframe: the caller should reset the front end so the next frame seeds one."""
        return self._kf is None

    @property
    def metric(self) -> bool:
        return bool(self.config.use_depth)

    def reset(self, reason: str = "reset") -> None:
        """Drop the keyframe and landmarks; keep the pose (odometry never jumps) and the speed (scale prior)."""
        self._kf = None
        self._anchor = None
        self._window.clear()
        self._fails = 0
        self._state = INITIALIZING
        self._reason = reason
        self._velocity = np.zeros(6)
        self._twist_cov = np.eye(6) * self.config.lost_covariance

    # ---- main entry -----------------------------------------------------------------------------------------
    def update(self, track: TrackResult, camera: Camera, depth: Optional[np.ndarray] = None) -> OdometryResult:
        t0 = time.perf_counter()
        stamp = float(track.stamp) if track.stamp is not None else (self._last_stamp or 0.0)
        self._last_failed = False
        result = self._update(track, camera, depth, stamp)
        result.pose_ms = (time.perf_counter() - t0) * 1e3
        return result

    def _update(self, track: TrackResult, camera: Camera, depth, stamp: float) -> OdometryResult:
        why = geo.validate_camera(camera) if camera is not None else "no camera"
        if why:
            return self._failure(stamp, f"invalid camera: {why}")
        if self.config.use_depth:
            why = geo.check_depth(depth, camera)
            if why:
                return self._failure(stamp, why)
        if track.is_first:
            return self._seed(track, camera, stamp, depth, "first frame (reference)", keyframe=False)
        if not track.ok:
            return self._failure(stamp, track.reason or "tracking failed")
        if self._kf is None:
            # The front end still holds an old reference whose pose we dropped: this frame becomes the new one.
            return self._seed(track, camera, stamp, depth, "new reference after reset", keyframe=True)
        if len(track.matches) < self.config.min_matches:
            return self._failure(stamp, geo.REASON_FEW_MATCHES)
        self._kf.max_matches = max(self._kf.max_matches, track.num_matches)
        # Undistort the matched points only, once, before any geometry.
        p0 = geo.undistort_points(camera, track.points0)
        p1 = geo.undistort_points(camera, track.points1)
        ids = np.asarray(track.track_ids, dtype=np.int64)
        if self._is_static(ids, p0, p1):
            return self._static(stamp, len(ids))
        mode = self._track_rgbd if self.config.use_depth else self._track_mono
        result = mode(track, camera, depth, stamp, p0, p1, ids)
        if result.updated:
            self._anchor = (ids, p1)
        return result

    def _is_static(self, ids: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> bool:
        """Median flow against the last posed frame (the keyframe when none) below ``min_parallax_px``.

        Comparing with the last *estimated* frame, not the previous frame, lets slow motion accumulate until it
        is measurable instead of being held away frame after frame; comparing with it rather than the keyframe
        stops a camera that halted between keyframes from jittering around its true pose.
        """
        limit = self.config.min_parallax_px
        if self._anchor is None:
            return bool(np.median(np.linalg.norm(p1 - p0, axis=1)) < limit)
        a_ids, a_pts = self._anchor
        _, ia, ic = np.intersect1d(a_ids, ids, return_indices=True)
        if len(ia) < self.config.min_matches:
            return False
        return bool(np.median(np.linalg.norm(p1[ic] - a_pts[ia], axis=1)) < limit)

    # ---- seeding --------------------------------------------------------------------------------------------
    def _seed(self, track: TrackResult, camera: Camera, stamp: float, depth, reason: str,
              keyframe: bool) -> OdometryResult:
        """Start a new keyframe at the current pose (continuity): the frame only becomes the reference."""
        if self.config.use_depth and not self._depth_usable(track.kpts1, camera, depth):
            # Nothing could be tracked from a keyframe without depth at its keypoints: refuse it, so the
            # caller's front end drops it (needs_reference) and the next frame seeds instead.
            self._kf = None
            return self._failure(stamp, REASON_SEED_DEPTH)
        kf = _Keyframe(self._pose.copy(), self._cov.copy(), stamp)
        if self.config.use_depth:
            kf.depth = geo.depth_in_metres(depth)
        self._kf = kf
        self._anchor = None
        self._fails = 0
        if self._state == LOST:
            self._state = INITIALIZING
        self._last_stamp = stamp
        self._reason = reason
        return self._result(stamp, updated=False, keyframe=keyframe, inliers=0)

    # ---- RGB-D ----------------------------------------------------------------------------------------------
    def _track_rgbd(self, track: TrackResult, camera: Camera, depth, stamp: float, p0, p1, ids) -> OdometryResult:
        cfg, kf = self.config, self._kf
        lifted = geo.lift_keypoints(track.points0, kf.depth, camera, cfg.min_depth, cfg.max_depth,
                                    cfg.depth_interpolation)
        if lifted.reason and lifted.reason != geo.REASON_FEW_DEPTH:
            return self._failure(stamp, lifted.reason)
        est = geo.metric_pose(lifted.xyz, p1, camera, cfg, pts_ref=p0)
        if est.reason == geo.REASON_NO_PARALLAX:
            return self._static(stamp, est.num_inliers)
        if not est.ok:
            return self._failure(stamp, est.reason)
        step = _Step(est.T_0_1, est.covariance, est.num_inliers, est.parallax_px)
        # A frame whose own depth is unusable at its keypoints would make a keyframe nothing can be tracked from.
        keyframe = self._wants_keyframe(track, step) and self._depth_usable(track.points1, camera, depth)
        result = self._success(stamp, step, keyframe)
        if keyframe:
            self._kf = _Keyframe(self._pose.copy(), self._cov.copy(), stamp, depth=geo.depth_in_metres(depth))
        return result

    def _depth_usable(self, pts_px, camera: Camera, depth) -> bool:
        cfg = self.config
        lifted = geo.lift_keypoints(pts_px, depth, camera, cfg.min_depth, cfg.max_depth, cfg.depth_interpolation)
        return int(lifted.valid.sum()) >= max(cfg.min_inliers, cfg.keyframe_min_inliers // 2)

    # ---- monocular ------------------------------------------------------------------------------------------
    def _track_mono(self, track: TrackResult, camera: Camera, depth, stamp: float, p0, p1, ids) -> OdometryResult:
        kf, cfg = self._kf, self.config
        lm_index = self._landmark_index(ids)
        has_lm = lm_index >= 0
        if has_lm.sum() < max(cfg.min_inliers, 6):
            return self._initialise(track, camera, stamp, p0, p1, ids)
        step, reason = self._two_view_step(camera, p0, p1, lm_index)
        if step is None:
            # Two views could not give the motion (too few matches for the 5-point model, or no scale from the
            # landmarks): PnP against the landmarks is the fallback, never the first choice (it starves when the
            # points leave the view, while hundreds of matches still give the rotation precisely).
            use = self._pnp_landmarks(has_lm, lm_index)
            est = geo.metric_pose(kf.xyz[lm_index[use]], p1[use], camera, cfg, pts_ref=p0[use])
            if est.reason == geo.REASON_NO_PARALLAX or reason == geo.REASON_NO_PARALLAX:
                return self._static(stamp, est.num_inliers)
            if not est.ok:
                return self._failure(stamp, est.reason)
            step = _Step(est.T_0_1, est.covariance, est.num_inliers, est.parallax_px,
                         trans_parallax_px=est.trans_parallax_px, scale_source=SCALE_PNP)
            sigma = max(est.sigma_px, 0.5 * cfg.ransac_threshold_px)
        else:
            sigma = 0.5 * cfg.ransac_threshold_px
        keyframe = self._wants_keyframe(track, step)
        if keyframe:
            # Landmarks that disagree with the pose are not carried over.
            carry = self._consistent(step, camera, p1, lm_index)
            if step.scale_source == SCALE_PNP:
                step = self._rescaled(step, camera, p0, p1, lm_index, carry, sigma)
        result = self._success(stamp, step, keyframe)
        if keyframe:
            self._promote_mono(camera, stamp, step, p0, p1, ids, carry, lm_index, sigma)
            result = self._adjust_window(result, camera, ids, p0, p1)
            prev = self._window.keyframes[-2].pose if len(self._window.keyframes) > 1 else kf.pose
            result = self._ground_scale(result, prev, first=False)
        return result

    def _adjust_window(self, result: OdometryResult, camera: Camera, ids, p0, p1) -> OdometryResult:
        """Add the new keyframe to the window and bundle-adjust it; the newest keyframe takes the refined pose.

        Only the tracks the new keyframe kept as landmarks are observations (the others failed the two-view
        checks). The frames until the next keyframe are placed from the adjusted keyframe, and the published
        covariance is the adjustment's marginal of the newest pose (relative to the window's oldest keyframe)
        added to that keyframe's own.
        """
        kf = self._kf
        keep = np.isin(ids, kf.ids) & _unique(ids)
        self._window.add(kf.pose, kf.cov, ids[keep], p0[keep], p1[keep], kf.ids, kf.xyz)
        if self.config.bundle_window < 3:
            return result
        res, why = self._window.adjust(camera.K, (camera.width, camera.height))
        if res is None or not res.ok:
            return result
        kf.pose = res.poses[-1].copy()
        have, xyz = self._window.newest_map(kf.ids)
        if xyz is not None:
            front = xyz[:, 2] > 0
            idx = np.flatnonzero(have)[front]
            kf.xyz[idx] = xyz[front]
        if res.covariance is not None:
            kf.cov = self._window.keyframes[0].cov + res.covariance
        self._window.keyframes[-1].cov = kf.cov.copy()
        self._pose, self._cov = kf.pose.copy(), kf.cov.copy()
        result.pose = self._pose.copy()
        result.covariance = self._cov + np.eye(6) * 1e-12
        return result

    def _two_view_step(self, camera: Camera, p0, p1, lm_index) -> tuple[Optional[_Step], str]:
        """Keyframe-to-frame motion from all matches, with the one thing two views lack (scale) from landmarks.

        Rotation and translation direction come from PoseLib's LO-RANSAC over every match (undistorted), which
        stays precise on real frames where most points are new. The baseline length is the median over
        landmark tracks of stored depth / depth triangulated with a unit baseline (depths scale linearly with
        the baseline). Returns (None, reason) when the two views cannot give the motion.
        """
        K = camera.K
        est = geo.relative_pose(p0, p1, camera, camera, self.config)
        if not est.ok:
            return None, est.reason
        T_unit = make_T(est.R, est.t)  # T_kf_cur with |t| = 1
        ratios = self._depth_ratios(K, T_unit, p0, p1, lm_index, est.inliers & (lm_index >= 0))
        if len(ratios) < RESCALE_MIN_POINTS:
            return None, "too few landmarks for the scale"
        scale = float(np.median(ratios))
        # Robust spread of the ratio (MAD): the scale's share of the translation uncertainty.
        rel_sigma = 1.4826 * float(np.median(np.abs(ratios / scale - 1.0))) / np.sqrt(len(ratios))
        S = np.diag([scale] * 3 + [1.0] * 3)
        cov = S @ est.covariance @ S
        t = est.t * scale
        cov[:3, :3] += np.outer(t, t) * rel_sigma ** 2
        step = _Step(make_T(est.R, t), cov, est.num_inliers, est.parallax_px,
                     trans_parallax_px=est.trans_parallax_px, scale_source=SCALE_LANDMARKS)
        return step, ""

    def _pnp_landmarks(self, has_lm: np.ndarray, lm_index: np.ndarray) -> np.ndarray:
        """Return the matched landmarks PnP uses: the precise ones when there are plenty.

        PnP treats landmarks as exact; noisy depths act like a noisy regressor and shorten the estimated
        translation (regression dilution), so imprecise landmarks are left out when enough precise ones remain.
        """
        kf = self._kf
        idx = np.maximum(lm_index, 0)
        rel = np.sqrt(kf.var[idx]) * kf.xyz[idx, 2]
        good = has_lm & (rel < PNP_MAX_REL_DEPTH_ERROR)
        return good if good.sum() >= 3 * max(self.config.min_inliers, 6) else has_lm

    def _consistent(self, step: _Step, camera: Camera, p1: np.ndarray, lm_index: np.ndarray) -> np.ndarray:
        """Mark the matches whose landmark reprojects within 2x the RANSAC threshold under the estimated pose."""
        has = lm_index >= 0
        out = np.zeros(len(lm_index), bool)
        if not has.any():
            return out
        Xc = transform(invert_T(step.T_kf_cur), self._kf.xyz[lm_index[has]])
        err = np.linalg.norm(geo.project(camera.K, Xc) - p1[has], axis=1)
        out[has] = (Xc[:, 2] > 0) & (err < 2 * self.config.ransac_threshold_px)
        return out

    def _rescaled(self, step: _Step, camera: Camera, p0, p1, lm_index, carry, sigma_px: float) -> _Step:
        """Keyframe translation rescaled so re-triangulated depths agree with the stored landmark depths.

        Triangulated depths scale linearly with the baseline, so each landmark gives a scale ``z_stored / z_tri``;
        their median is robust to outliers and, unlike the least-squares PnP translation, is not shortened by
        noisy landmark depths (regression dilution). Pairs count when their measured translational flow reaches
        MIN_FLOW_THRESHOLDS RANSAC thresholds, the same selection the fresh landmarks of `_promote_mono` get, so
        that the selection effect on the step and on the new landmarks is the same and cancels along the chain.
        """
        ratios = self._depth_ratios(camera.K, step.T_kf_cur, p0, p1, lm_index, carry)
        if len(ratios) < RESCALE_MIN_POINTS:
            return step
        s = float(np.median(ratios))
        if not 0.5 < s < 2.0:  # a wild correction means something else is wrong: keep the PnP estimate
            return step
        T = step.T_kf_cur.copy()
        T[:3, 3] *= s
        return dataclasses.replace(step, T_kf_cur=T)

    def _depth_ratios(self, K, T_kf_cur, p0, p1, lm_index, use) -> np.ndarray:
        """Return stored landmark depth / depth triangulated under ``T_kf_cur`` of the ``use`` matches that triangulate.

        Triangulated depths scale with the baseline, so each ratio is the baseline length in map units (for a
        unit baseline) or the correction of the baseline. Only pairs whose translational flow reaches
        MIN_FLOW_THRESHOLDS RANSAC thresholds count: the selection the fresh landmarks get (`_promote_mono`).
        """
        T_cur_kf = invert_T(T_kf_cur)
        _, d0, d1 = geo.triangulate(K, K, T_cur_kf, p0[use], p1[use])
        flow = geo.rotation_compensated_flow(K, K, T_cur_kf[:3, :3], p0[use], p1[use])
        z_lm = self._kf.xyz[lm_index[use], 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = np.isfinite(d0) & (d0 > 0) & (d1 > 0) & (flow >= self._min_flow_px)
            return z_lm[ok] / d0[ok]

    @property
    def _min_flow_px(self) -> float:
        return MIN_FLOW_THRESHOLDS * self.config.ransac_threshold_px

    def _landmark_index(self, ids: np.ndarray) -> np.ndarray:
        """Index of each match's landmark in the keyframe map, -1 where the track has none."""
        kf = self._kf
        out = np.full(len(ids), -1, np.int64)
        if len(kf.ids) == 0 or len(ids) == 0:
            return out
        order = np.argsort(kf.ids)
        pos = np.clip(np.searchsorted(kf.ids, ids, sorter=order), 0, len(kf.ids) - 1)
        hit = kf.ids[order[pos]] == ids
        out[hit] = order[pos[hit]]
        return out

    def _seed_baseline(self, stamp: float) -> float:
        """Length given to the first keyframe pair of a segment: 1 for the very first, else a speed prior."""
        dt = stamp - self._kf.stamp if self._kf.stamp is not None else 0.0
        if self._speed is not None and dt > 0:
            return max(self._speed * dt, 1e-6)
        return self._last_step if self._last_step else 1.0

    def _initialise(self, track, camera, stamp, p0, p1, ids) -> OdometryResult:
        """No landmarks yet: wait for enough translation, then fix the baseline and triangulate."""
        cfg = self.config
        est = geo.relative_pose(p0, p1, camera, camera, cfg)
        if est.reason == geo.REASON_NO_PARALLAX:
            return self._static(stamp, est.num_inliers)
        if est.reason == geo.REASON_ROTATION:
            return self._rotation_only(track, stamp, est, "initialising: pure rotation", may_promote=True)
        if not est.ok:
            return self._failure(stamp, est.reason)
        if est.trans_parallax_px < cfg.init_min_parallax_px:
            # Too little translation to fix a scale, but the rotation is measured: a camera that turns while
            # (re)initialising must turn in the odometry too, not jump when parallax finally arrives.
            self._init_wait = (self._kf, est.trans_parallax_px)
            return self._rotation_only(track, stamp, est, (
                f"initialising: waiting for parallax ({est.trans_parallax_px:.1f} < {cfg.init_min_parallax_px:g} px)"),
                may_promote=False)
        first = self._speed is None and self._last_step is None
        baseline = self._seed_baseline(stamp)
        T_kf_cur = make_T(est.R, est.t * baseline)
        inl = est.inliers
        X0, _, _ = geo.triangulate(camera.K, camera.K, invert_T(T_kf_cur), p0[inl], p1[inl])
        ok = np.all(np.isfinite(X0), axis=1) & (X0[:, 2] > 0)
        cov, sigma = geo.pose_covariance(X0[ok], p1[inl][ok], T_kf_cur, camera.K)
        step = _Step(T_kf_cur, cov, est.num_inliers, est.parallax_px, scale_source=SCALE_PRIOR)
        seed_pose, seed_cov = self._kf.pose.copy(), self._kf.cov.copy()  # the keyframe this pair starts from
        # The frames that waited for parallax went out at the seed's position; the share of this pair's baseline
        # they had covered (their parallax against this frame's: flow grows with the translation, for the same
        # points) is taken off the new segment's start, so the published pose steps on instead of jumping.
        waited = self._init_wait[1] if self._init_wait is not None and self._init_wait[0] is self._kf else 0.0
        covered = float(np.clip(waited / max(est.trans_parallax_px, 1e-9), 0.0, 1.0))
        self._init_wait = None
        published = (self._pose.copy(), self._last_stamp, self._last_rel_cov)  # the last frame that went out
        no_landmarks = np.full(len(ids), -1, np.int64)
        result = self._success(stamp, step, True, reason="initialised (scale: unit baseline)" if first
                               else "re-initialised (scale from the last speed: a prior, not a measurement)",
                               initialises=True)
        self._promote_mono(camera, stamp, step, p0, p1, ids, np.zeros(len(ids), bool), no_landmarks,
                           max(sigma, 0.5 * cfg.ransac_threshold_px))
        result = self._ground_scale(result, seed_pose, first=True)
        if result.scale_source == SCALE_GROUND:  # camera_height defined the first baseline, not the prior
            result.reason = f"{'initialised' if first else 're-initialised'} (scale: the ground plane at camera_height)"
        if covered > 0:
            shift = covered * (self._kf.pose[:3, 3] - seed_pose[:3, 3])
            seed_pose[:3, 3] -= shift
            self._kf.pose = self._kf.pose.copy()
            self._kf.pose[:3, 3] -= shift
            self._pose = self._kf.pose.copy()
            self._update_twist(self._pose, stamp, step.cov, published)  # the step it took from the last one out
            result.pose, result.velocity = self._pose.copy(), self._velocity.copy()
            result.twist_covariance = self._twist_cov.copy()
        # A new segment: its window starts with the two keyframes of the initialisation.
        self._window.clear()
        none = np.zeros(0, np.int64)
        self._window.add(seed_pose, seed_cov, none, np.zeros((0, 2)), np.zeros((0, 2)), none,
                         np.zeros((0, 3)))
        keep = np.isin(ids, self._kf.ids) & _unique(ids)
        self._window.add(self._kf.pose, self._kf.cov, ids[keep], p0[keep], p1[keep], self._kf.ids, self._kf.xyz)
        if len(self._kf.ids) < cfg.min_inliers:
            self._reason = "initialised with few landmarks"
        return result

    def _rotation_only(self, track: TrackResult, stamp: float, est, reason: str, may_promote: bool) -> OdometryResult:
        """Report the keyframe-to-frame rotation with zero translation (translation unobservable or too small).

        The translation variance is one (unit-baseline units: there is no scale yet), the rotation's small. With
        ``may_promote`` (pure rotation) the frame may become a keyframe without landmarks, so a long turn keeps
        matching; while waiting for parallax it must not, or the parallax would never accumulate.
        """
        cov = np.diag([1.0, 1.0, 1.0, 1e-6, 1e-6, 1e-6])
        step = _Step(make_T(est.R, np.zeros(3)), cov, est.num_inliers, est.parallax_px)
        keyframe = may_promote and self._wants_keyframe(track, step)
        result = self._success(stamp, step, keyframe, reason=reason)
        if keyframe:
            self._kf = _Keyframe(self._pose.copy(), self._cov.copy(), stamp)
        return result

    def _promote_mono(self, camera: Camera, stamp: float, step: _Step, p0, p1, ids, carry: np.ndarray,
                      lm_index: np.ndarray, sigma_px: float) -> None:
        """Make the current frame the keyframe: fuse carried landmarks with freshly triangulated points.

        Fusion is in inverse depth along the current keypoint's ray. The two-view inverse-depth error is
        ``sigma / (f * b_perp)`` (b_perp: baseline across the ray), which does not depend on the estimated depth;
        weighting by a depth-based variance instead would favour under-estimated depths and shrink the scale
        keyframe after keyframe. Fresh points need a rotation-compensated flow of at least 2x the RANSAC
        threshold and must reproject within it in both views.
        """
        cfg = self.config
        old = self._kf
        K = camera.K
        T_cur_kf = invert_T(step.T_kf_cur)
        X0, d0, d1 = geo.triangulate(K, K, T_cur_kf, p0, p1)
        X1 = transform(T_cur_kf, X0)
        flow = geo.rotation_compensated_flow(K, K, T_cur_kf[:3, :3], p0, p1)
        rays = geo.bearings(K, p1)
        with np.errstate(invalid="ignore", divide="ignore"):
            err0 = np.linalg.norm(geo.project(K, X0) - p0, axis=1)
            err1 = np.linalg.norm(geo.project(K, X1) - p1, axis=1)
            fresh = (np.isfinite(d0) & (d0 > 0) & (d1 > 0)
                     & (flow >= self._min_flow_px)
                     & (err0 < 2 * cfg.ransac_threshold_px) & (err1 < 2 * cfg.ransac_threshold_px))
            unit = rays / np.linalg.norm(rays, axis=1, keepdims=True)
            b = step.T_kf_cur[:3, 3] @ T_cur_kf[:3, :3].T  # baseline (kf centre -> cur centre) in the cur frame
            b_perp = np.linalg.norm(b[None, :] - (unit @ b)[:, None] * unit, axis=1)
            sigma_ang = np.sqrt(2.0) * sigma_px / np.sqrt(K[0, 0] * K[1, 1])
            fresh &= b_perp > 0
            rho_f = np.where(fresh, 1.0 / d1, 0.0)
            var_f = np.where(fresh, (sigma_ang / np.maximum(b_perp, 1e-12)) ** 2, np.inf)
        carried = carry & (lm_index >= 0)
        rho_c = np.zeros(len(ids))
        var_c = np.full(len(ids), np.inf)
        if carried.any():
            Xc = transform(T_cur_kf, old.xyz[lm_index[carried]])
            rho_old = 1.0 / old.xyz[lm_index[carried], 2]
            good = Xc[:, 2] > 0
            idx = np.flatnonzero(carried)
            carried[idx[~good]] = False
            rho_c[idx[good]] = 1.0 / Xc[good, 2]
            # d(rho')/d(rho) = (rho'/rho)^2 for a point seen from a moved camera (first order).
            var_c[idx[good]] = old.var[lm_index[idx[good]]] * (rho_c[idx[good]] / rho_old[good]) ** 4
        w_f = np.where(fresh, 1.0 / np.maximum(var_f, 1e-300), 0.0)
        w_c = np.where(carried, 1.0 / np.maximum(var_c, 1e-300), 0.0)
        wsum = w_f + w_c
        keep = (fresh | carried) & _unique(ids) & (wsum > 0)
        rho = (w_f * rho_f + w_c * rho_c)[keep] / wsum[keep]
        keep_idx = np.flatnonzero(keep)
        ok = rho > 0
        keep_idx, rho = keep_idx[ok], rho[ok]
        xyz = rays[keep_idx] / rho[:, None]
        kf = _Keyframe(self._pose.copy(), self._cov.copy(), stamp, ids[keep_idx].copy(), xyz,
                       1.0 / wsum[keep_idx])
        step_len = float(np.linalg.norm(step.T_kf_cur[:3, 3]))
        if step_len > 0 and old is not None and old.stamp is not None and stamp > old.stamp:
            speed = step_len / (stamp - old.stamp)
            self._speed = speed if self._speed is None else 0.7 * self._speed + 0.3 * speed
        if step_len > 0:
            self._last_step = step_len
        self._kf = kf

    def _ground_candidates(self, first: bool) -> np.ndarray:
        """Points for the ground fit, in the new keyframe's frame: the whole window's, else the keyframe's.

        On a road the points close to the camera, where triangulation is precise, leave the view within a few
        frames; one keyframe keeps only a handful of them. The window's points (bundle-adjusted, those behind
        the camera too) pool the road seen over its keyframes, several times as many.
        """
        kf = self._kf
        if first or len(self._window.keyframes) < 2 or not self._window.points:
            return kf.xyz
        return transform(invert_T(kf.pose), np.stack(list(self._window.points.values())))

    def _ground_scale(self, result: OdometryResult, T_w_prev: np.ndarray, first: bool) -> OdometryResult:
        """With ``camera_height``: rescale the map (at initialisation the first step) so the camera sits that high.

        The ground plane is fitted (`ground_plane`) to the window's points, or at initialisation the new
        keyframe's; its distance to the camera, in map units, against ``camera_height`` is the scale error. The
        first plane of a map takes the whole correction: at initialisation it defines the first baseline, later
        (no plane was in view until now) it rescales the map. After that each keyframe takes a quarter of the
        error in log scale (GROUND_GAIN), at most 25 %, so one bad plane cannot throw the scale. Later
        corrections scale the window (keyframes and points) and the keyframe's map about the newest keyframe:
        the published pose does not jump, the steps that follow come out corrected, and the next adjustment's
        gauge (the oldest baseline) carries the new scale. No plane in view: the landmark scale carries on and
        the frame says so.
        """
        h = self.config.camera_height
        if h <= 0:
            return result
        kf = self._kf
        if first:
            self._ground_anchored = False  # a new map: its scale is the prior until a plane is seen
        tilt = GROUND_MAX_TILT_DEG if self._ground_normal_fitted else GROUND_SEARCH_TILT_DEG
        plane = ground_plane(self._ground_candidates(first), normal=self._ground_normal, max_tilt_deg=tilt)
        if plane is not None and plane.inliers >= GROUND_NORMAL_POINTS:
            # Enough points to trust the fitted normal: it is the mount's, kept for the fits with few points.
            self._ground_normal, self._ground_normal_fitted = plane.normal, True
        height = None if plane is None else plane.height(self._ground_normal)
        why = "no ground plane in view"
        if height is not None and self._ground_anchored and plane.inliers < GROUND_TRUST_POINTS \
                and abs(np.log(h / height)) > np.log(GROUND_MAX_DISAGREEMENT):
            # Between two keyframes the landmark scale drifts by percents; a plane of a few points that puts the
            # camera 25 % off is more likely something else (measured on the drive: 16 points put it at 4.6 m).
            height, why = None, f"ground plane of {plane.inliers} points disagrees with the map's scale: ignored"
        if height is None:
            self._scale_source = SCALE_PRIOR if first else SCALE_LANDMARKS
            result.scale_source = self._scale_source
            result.reason = (result.reason + "; " if result.reason else "") + why
            return result
        r = h / height
        if self._ground_anchored:
            r = float(np.clip(r ** GROUND_GAIN, 0.8, 1.25))
        if first:  # the first step stretches by r about the previous keyframe's centre: it defines the scale
            kf.pose = kf.pose.copy()
            kf.pose[:3, 3] = T_w_prev[:3, 3] + r * (kf.pose[:3, 3] - T_w_prev[:3, 3])
            self._pose = kf.pose.copy()
            result.pose = self._pose.copy()
        elif self._window.keyframes:
            self._window.rescale(r)
        kf.xyz = kf.xyz * r
        kf.var = kf.var / r ** 2
        if self._speed is not None:
            self._speed *= r
        if self._last_step:
            self._last_step *= r
        self._ground_anchored = True
        self._scale_source = SCALE_GROUND
        result.scale_source = SCALE_GROUND
        return result

    # ---- keyframe policy ------------------------------------------------------------------------------------
    def _wants_keyframe(self, track: TrackResult, step: _Step) -> bool:
        """Overlap dropping, median parallax past the limit, or inliers dropping.

        Monocular: the inlier rule waits until the new keyframe could triangulate (translational flow of at
        least the fresh-landmark minimum); otherwise a small map makes every next frame a keyframe with an even
        smaller map.
        """
        cfg, kf = self.config, self._kf
        tracked = track.num_matches / max(kf.max_matches, 1)
        few_inliers = step.inliers < cfg.keyframe_min_inliers
        if few_inliers and not cfg.use_depth:
            few_inliers = step.trans_parallax_px >= self._min_flow_px
        return tracked < cfg.keyframe_min_tracked or few_inliers or step.parallax_px > cfg.keyframe_max_parallax_px

    # ---- bookkeeping ----------------------------------------------------------------------------------------
    def _initialised(self) -> bool:
        kf = self._kf
        if kf is None:
            return False
        if self.config.use_depth:
            return kf.depth is not None
        return len(kf.ids) > 0

    def _success(self, stamp: float, step: _Step, keyframe: bool, reason: str = "",
                 initialises: bool = False) -> OdometryResult:
        kf = self._kf
        pose = kf.pose @ step.T_kf_cur
        cov = geo.compose_covariance(kf.pose, kf.cov, step.T_kf_cur, step.cov)
        self._update_twist(pose, stamp, step.cov)
        self._pose, self._cov = pose, cov
        self._last_rel_cov = step.cov
        self._fails = 0
        self._state = TRACKING if (self._initialised() or initialises) else INITIALIZING
        self._reason = reason
        self._last_stamp = stamp
        result = self._result(stamp, updated=True, keyframe=keyframe, inliers=step.inliers)
        # Between keyframes the scale is the last keyframe's: ground-anchored once camera_height has applied.
        source = step.scale_source
        if source in (SCALE_LANDMARKS, SCALE_PNP) and self._scale_source == SCALE_GROUND:
            source = SCALE_GROUND
        result.scale_source = SCALE_DEPTH if self.config.use_depth else source
        return result

    def _static(self, stamp: float, inliers: int) -> OdometryResult:
        """No detectable motion: hold the pose exactly (no drift), zero twist, no keyframe."""
        self._fails = 0
        if self._state == LOST:
            self._state = TRACKING if self._initialised() else INITIALIZING
        self._reason = "static (no parallax)"
        dt = stamp - self._last_stamp if self._last_stamp is not None else 0.0
        self._velocity = np.zeros(6)
        if dt > 0:
            self._twist_cov = 2.0 * self._last_rel_cov / dt ** 2 + np.eye(6) * 1e-12
        self._last_stamp = stamp
        return self._result(stamp, updated=False, keyframe=False, inliers=inliers)

    def _failure(self, stamp: float, reason: str) -> OdometryResult:
        cfg = self.config
        self._fails += 1
        self._last_failed = True
        self._reason = reason
        if self._fails >= cfg.lost_after:
            self._state = LOST
            self._velocity = np.zeros(6)
            self._twist_cov = np.eye(6) * cfg.lost_covariance
            if cfg.lost_policy == "reset":
                self._kf = None
        return self._result(stamp, updated=False, keyframe=False, inliers=0)

    def _update_twist(self, pose: np.ndarray, stamp: float, rel_cov: np.ndarray, prev: Optional[tuple] = None) -> None:
        """Velocity of the current camera in its own frame from the motion since the last posed frame.

        ``prev``: (pose, stamp, relative covariance) of that frame; None = the odometry's current state.
        """
        prev_pose, prev_stamp, prev_rel_cov = prev or (self._pose, self._last_stamp, self._last_rel_cov)
        dt = stamp - prev_stamp if prev_stamp is not None else 0.0
        if dt <= 0:
            self._velocity = np.zeros(6)
            self._twist_cov = np.eye(6) * self.config.lost_covariance
            return
        T = invert_T(prev_pose) @ pose  # T_prev_cur
        R_cur_prev = T[:3, :3].T
        v = R_cur_prev @ T[:3, 3] / dt
        w = R_cur_prev @ so3_log(T[:3, :3]) / dt
        self._velocity = np.concatenate([v, w])
        # Both poses are measured against the same keyframe with similar errors: a first-order, independent sum.
        self._twist_cov = (rel_cov + prev_rel_cov) / dt ** 2 + np.eye(6) * 1e-12

    def _result(self, stamp: float, updated: bool, keyframe: bool, inliers: int) -> OdometryResult:
        cov = self._cov.copy()
        if self._state == LOST:
            cov = cov + np.eye(6) * self.config.lost_covariance
        # Keep the reported matrix strictly positive definite even before any measurement.
        cov = cov + np.eye(6) * 1e-12
        return OdometryResult(
            stamp=stamp, state=self._state, reason=self._reason, pose=self._pose.copy(), covariance=cov,
            velocity=self._velocity.copy(), twist_covariance=self._twist_cov.copy(), inliers=int(inliers),
            keyframe=keyframe, metric=self.metric, updated=updated,
        )
