"""refine.align_points: matched points moved onto the reference point's patch, checked against exact ground truth."""
import numpy as np
import pytest

from lightglue_ros.io.datasets import synthetic_sequence
from lightglue_ros.io.synthetic import SyntheticConfig, project_correspondences
from lightglue_ros.matching.frontend import FrontEnd, FrontEndConfig, to_grey
from lightglue_ros.matching.refine import AlignConfig, align_points


@pytest.fixture(scope="module")
def frames():
    return list(synthetic_sequence(SyntheticConfig(seed=5, frames=3, width=320, height=240, motion="forward")))


def _true_matches(f0, f1, n=300, seed=0):
    """Reference points on a grid inside the image and their exact positions in the next frame."""
    rng = np.random.default_rng(seed)
    h, w = f0.image.shape[:2]
    p0 = np.c_[rng.uniform(20, w - 20, n), rng.uniform(20, h - 20, n)].astype(np.float32)
    gt, valid = project_correspondences(f0, f1, p0)
    inside = valid & (gt[:, 0] > 15) & (gt[:, 0] < w - 15) & (gt[:, 1] > 15) & (gt[:, 1] < h - 15)
    return p0[inside], gt[inside].astype(np.float32)


def test_aligned_points_land_on_the_true_position(frames):
    f0, f1 = frames[0], frames[1]
    p0, gt = _true_matches(f0, f1)
    noisy = gt + np.random.default_rng(1).uniform(-1.0, 1.0, gt.shape).astype(np.float32)
    aligned, moved = align_points(to_grey(f0.image), to_grey(f1.image), p0, noisy)
    before = np.linalg.norm(noisy - gt, axis=1)
    after = np.linalg.norm(aligned - gt, axis=1)
    print(f"moved {moved.mean():.0%}; median error {np.median(before[moved]):.3f} -> {np.median(after[moved]):.3f} px")
    assert moved.mean() > 0.5
    assert np.median(after[moved]) < 0.35 * np.median(before[moved])
    assert np.array_equal(aligned[~moved], noisy[~moved])  # rejected points keep their detected position


def test_nothing_moves_without_texture_or_points(frames):
    flat = np.full((120, 160), 128, np.uint8)
    pts = np.array([[40.0, 40.0], [80.5, 60.25]], np.float32)
    aligned, moved = align_points(flat, flat, pts, pts + 0.7)
    assert not moved.any() and np.array_equal(aligned, pts + 0.7)
    aligned, moved = align_points(flat, flat, np.zeros((0, 2)), np.zeros((0, 2)))
    assert aligned.shape == (0, 2) and moved.shape == (0,)
    # A shift beyond max_shift_px is refused: the match stays where the matcher put it.
    f0, f1 = frames[0], frames[1]
    p0, gt = _true_matches(f0, f1, n=50)
    _, moved = align_points(to_grey(f0.image), to_grey(f1.image), p0, gt + 2.5, AlignConfig(max_shift_px=1.0))
    assert not moved.any()


def test_front_end_reports_aligned_matches_closer_to_the_truth(frames):
    """refine_matches (the lightglue default) moves the matched current points towards the exact correspondences
    of the reference points; the frame's own keypoints stay as detected."""
    errors = {}
    for refine in (False, True):
        fe = FrontEnd(FrontEndConfig(device="cpu", max_keypoints=512, refine_matches=refine))
        fe.track(frames[0].image)
        r = fe.track(frames[1].image)
        assert r.ok
        gt, valid = project_correspondences(frames[0], frames[1], r.points0)
        err = np.linalg.norm(r.points1 - gt, axis=1)[valid]
        errors[refine] = float(np.median(err[err < 3]))
        assert np.array_equal(fe.last.keypoints, fe.backend.extract(frames[1].image)[0])
    print("median match error (px): detected", errors[False], "aligned", errors[True])
    assert errors[True] < 0.8 * errors[False]
