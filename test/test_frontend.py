"""The streaming front end: track ids against exact ground truth, reference policy, masks, bad input."""
import numpy as np
import pytest

from lightglue_ros.tools.bench import backend_config
from lightglue_ros.io.datasets import synthetic_sequence
from lightglue_ros.io.synthetic import SyntheticConfig, project_correspondences
from lightglue_ros.matching.frontend import FrontEnd, FrontEndConfig, FrontEndError

SMALL = dict(max_keypoints=512)


@pytest.fixture(scope="module")
def frames():
    return list(synthetic_sequence(SyntheticConfig(seed=3, frames=8, width=320, height=240, motion="orbit")))


@pytest.fixture(scope="module")
def lightglue_frontend():
    return FrontEnd(FrontEndConfig(device="cpu", **SMALL))


def make(backend, lightglue_frontend, **kw):
    if backend == "lightglue" and not kw:
        lightglue_frontend.reset()
        lightglue_frontend.config.auto_promote = True
        return lightglue_frontend
    return FrontEnd(backend_config(backend, device="cpu", **SMALL, **kw))  # lightglue:dog = DoG keypoints


@pytest.mark.parametrize("backend", ["lightglue", "lightglue:dog", "xfeat", "orb", "sift"])
def test_track_ids_follow_ground_truth(frames, lightglue_frontend, backend):
    """A point matched through consecutive frames keeps its id, and the id follows the true 3D point."""
    fe = make(backend, lightglue_frontend)
    first = fe.track(frames[0].image, stamp=frames[0].stamp)
    assert first.is_first and not first.ok and first.reason
    where = {}  # track id -> (frame index, pixel)
    correct = total = carried = 0
    for i in range(1, len(frames)):
        r = fe.track(frames[i].image, stamp=frames[i].stamp)
        assert r.ok, r.reason
        assert r.ref_stamp == frames[i - 1].stamp and r.stamp == frames[i].stamp
        assert len(set(r.track_ids.tolist())) == len(r.track_ids), "ids are unique within a frame"
        gt, valid = project_correspondences(frames[i - 1], frames[i], r.points0)
        ok = valid & (np.linalg.norm(gt - r.points1, axis=1) < 3.0)
        correct += int(ok.sum())
        total += int(valid.sum())
        # An id seen before must belong to the same physical point: check against the frame it was last seen in.
        for tid, p1, good in zip(r.track_ids.tolist(), r.points1, ok):
            if tid in where and good:
                j, pj = where[tid]
                gtj, vj = project_correspondences(frames[j], frames[i], pj[None])
                if vj[0]:
                    carried += 1
                    assert np.linalg.norm(gtj[0] - p1) < 4.0, f"track {tid} jumped to another point"
            where[tid] = (i, p1)
    assert total > 100 and correct / total > 0.9, (correct, total)
    assert carried > 50, "tracks must persist over several frames"


def test_reference_is_kept_until_promoted(frames, lightglue_frontend):
    fe = make("orb", lightglue_frontend, auto_promote=False)
    fe.track(frames[0].image, stamp=0.0)  # the first frame always seeds the reference
    for i in (1, 2, 3):
        r = fe.track(frames[i].image, stamp=float(i))
        assert r.ref_stamp == 0.0
    ids_before = r.track_ids
    fe.promote()
    r = fe.track(frames[4].image, stamp=4.0)
    assert r.ref_stamp == 3.0
    # Points frame 3 matched to the keyframe keep the keyframe's ids after promotion.
    assert len(np.intersect1d(ids_before, r.track_ids)) > 20


@pytest.mark.parametrize("backend", ["lightglue", "xfeat", "orb"])
def test_bad_input_never_raises(frames, lightglue_frontend, backend):
    fe = make(backend, lightglue_frontend)
    img = frames[0].image
    fe.track(img, stamp=0.0)
    cases = {
        "none": None,
        "empty": np.zeros((0, 0, 3), np.uint8),
        "1x1": np.zeros((1, 1), np.uint8),
        "smaller than the stride": np.full((12, 20, 3), 128, np.uint8),
        "black": np.zeros_like(img),
        "white": np.full_like(img, 255),
        "5 channels": np.zeros((240, 320, 5), np.uint8),
        "int64": np.zeros((240, 320), np.int64),
        "list": [[1, 2], [3, 4]],
    }
    for name, bad in cases.items():
        r = fe.track(bad, stamp=1.0)
        assert not r.ok and r.reason, name
        assert r.matches.shape == (0, 2) and r.matches.dtype == np.int64, name
    r = fe.track(img, mask=np.zeros((10, 10), np.uint8), stamp=2.0)
    assert not r.ok and "mask size" in r.reason
    # After all that, good frames track again.
    fe.track(frames[1].image, stamp=3.0)
    r = fe.track(frames[2].image, stamp=4.0)
    assert r.ok, r.reason


def test_size_change_restarts_from_new_size(frames, lightglue_frontend):
    fe = make("lightglue", lightglue_frontend)
    fe.track(frames[0].image)
    assert fe.track(frames[1].image).ok
    half = np.ascontiguousarray(frames[2].image[::2, ::2])
    r = fe.track(half)
    assert r.is_first and not r.ok  # reference dropped, this frame is the new reference
    assert fe.track(np.ascontiguousarray(frames[3].image[::2, ::2])).ok


@pytest.mark.parametrize("backend", ["lightglue", "xfeat", "orb"])
def test_masks_keep_points_out(frames, lightglue_frontend, backend):
    fe = make(backend, lightglue_frontend)
    h, w = frames[0].image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[:, : w // 2] = 255  # ignore the left half (robot body)
    fe.track(frames[0].image, mask=mask)
    r = fe.track(frames[1].image, mask=mask)
    assert r.ok
    assert (r.points0[:, 0] >= w // 2 - 1).all() and (r.points1[:, 0] >= w // 2 - 1).all()


def test_specular_threshold_masks_bright_pixels(frames, lightglue_frontend):
    img0, img1 = frames[0].image.copy(), frames[1].image.copy()
    h, w = img0.shape[:2]
    for img in (img0, img1):
        img[h // 4: h // 2, w // 4: w // 2] = 255  # a blown-out highlight
    fe = FrontEnd(FrontEndConfig(backend="orb", specular_threshold=250, **SMALL))
    fe.track(img0)
    r = fe.track(img1)

    def inside(p):
        return (p[:, 0] > w // 4 - 2) & (p[:, 0] < w // 2 + 1) & (p[:, 1] > h // 4 - 2) & (p[:, 1] < h // 2 + 1)

    assert r.ok and not inside(r.points1).any()


def test_static_mask_file_and_config_errors(tmp_path, frames):
    import cv2

    h, w = frames[0].image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[h // 2:] = 255
    cv2.imwrite(str(tmp_path / "body.png"), mask)
    fe = FrontEnd(FrontEndConfig(backend="orb", static_mask=str(tmp_path / "body.png"), **SMALL))
    fe.track(frames[0].image)
    r = fe.track(frames[1].image)
    assert r.ok and (r.points1[:, 1] < h // 2 + 1).all()
    for bad in (dict(backend="superpoint"), dict(static_mask=str(tmp_path / "missing.png")), dict(device="tpu"),
                dict(precision="int4"), dict(precision="bf16"), dict(max_keypoints=0),
                dict(backend="lightglue", detector="harris")):
        with pytest.raises(FrontEndError):
            FrontEnd(FrontEndConfig(**{"backend": "orb", **bad}))


def test_dog_keypoints_are_opencv_extrema_once_each_strongest_first(frames):
    """detector=dog: OpenCV's DoG extrema, each position once (SIFT lists one per orientation), capped at
    max_keypoints; they are the keypoints the front end reports and matches."""
    import cv2

    from lightglue_ros.core.image import to_grey
    from lightglue_ros.matching.backends import DOG_CONTRAST_THRESHOLD

    fe = FrontEnd(FrontEndConfig(device="cpu", max_keypoints=200, detector="dog"))
    image = frames[0].image
    k = fe.backend.dog_keypoints(image)
    assert len(k) == 200 and len(np.unique(k, axis=0)) == 200
    found = cv2.SIFT_create(nfeatures=0, contrastThreshold=DOG_CONTRAST_THRESHOLD).detect(to_grey(image), None)
    strength = {}
    for kp in found:
        strength[kp.pt] = max(strength.get(kp.pt, 0.0), kp.response)
    assert all(tuple(map(float, p)) in strength for p in k)
    ranked = sorted(strength.values(), reverse=True)
    assert min(strength[tuple(map(float, p))] for p in k) >= ranked[199] - 1e-9  # the 200 strongest positions
    r = fe.track(image)
    assert np.array_equal(fe.last.keypoints, k)
    r = fe.track(frames[1].image)
    assert r.ok and r.num_matches > 50


def test_telemetry(frames, lightglue_frontend):
    fe = make("lightglue", lightglue_frontend)
    fe.track(frames[0].image)
    r = fe.track(frames[1].image)
    t = r.telemetry
    assert t.backend == "lightglue" and t.device == "cpu" and t.n_layers == 9
    assert 1 <= t.stop_layer <= 9 and t.keypoints0 > 100 and t.keypoints1 > 100
    assert 0 < t.extract_ms and 0 < t.match_ms and t.total_ms >= t.extract_ms + t.match_ms - 1e-3
    assert 0 <= t.pruned0 <= t.keypoints0 and 0 <= t.pruned1 <= t.keypoints1
