"""The hf backend (transformers' SuperPoint+LightGlue and EfficientLoFTR) with tiny random-weight models.

Hub weights cannot be fetched here, so the models are built from small configs, saved with ``save_pretrained``
and loaded back through the backend from a folder. Random weights match nothing meaningful: where a test needs
known correspondences a stub replaces only the network's output (the pre- and post-processing stay ours).
``LIGHTGLUE_ROS_HF_MODELS`` = a folder of downloaded models (one per subfolder) runs the real-weights test.
"""
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lightglue_ros.matching.frontend import FrontEnd, FrontEndConfig, FrontEndError

PROC = {"height": 96, "width": 128}  # the processors' size: every test image is resized (and not 4:3)


def _transformers():
    return pytest.importorskip("transformers", reason="the hf backend needs transformers: pip install .[hf]")


@pytest.fixture(scope="module")
def lg_dir(tmp_path_factory):
    tf = _transformers()
    torch.manual_seed(0)
    sp = tf.SuperPointConfig(encoder_hidden_sizes=[8, 8, 16, 16], decoder_hidden_size=32, descriptor_decoder_dim=32)
    cfg = tf.LightGlueConfig(keypoint_detector_config=sp, descriptor_dim=32, num_hidden_layers=2,
                             num_attention_heads=2)
    path = tmp_path_factory.mktemp("lightglue")
    tf.LightGlueForKeypointMatching(cfg).save_pretrained(path)
    tf.LightGlueImageProcessorPil(size=PROC).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def loftr_dir(tmp_path_factory):
    tf = _transformers()
    torch.manual_seed(0)
    # 8 heads: the rotary embedding's size only fits hidden_size / 8 per head; out_features[0] > the fine slice.
    cfg = tf.EfficientLoFTRConfig(stage_num_blocks=[1, 1, 1, 1], out_features=[16, 16, 32, 32], hidden_size=32,
                                  num_attention_layers=1, num_attention_heads=8)
    path = tmp_path_factory.mktemp("loftr")
    tf.EfficientLoFTRForKeypointMatching(cfg).save_pretrained(path)
    tf.EfficientLoFTRImageProcessorPil(size=PROC).save_pretrained(path)
    return path


def make(path, **kw) -> FrontEnd:
    return FrontEnd(FrontEndConfig(backend="hf", hf_model=str(path), device="cpu", **kw))


def texture(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------------------------------------------
# A stub for EfficientLoFTR's network output: exact matches given in input pixels
# ---------------------------------------------------------------------------------------------------------------
class LoftrStub:
    """Replaces ``model.forward``: call n returns ``pairs[n]`` = (p0, p1, scores) in input-image pixels."""

    def __init__(self, backend, size, pairs):
        from lightglue_ros.matching.hf_backend import to_processed

        self.backend, self.pairs, self.calls = backend, list(pairs), 0
        self.scale = np.array([size[0] / PROC["width"], size[1] / PROC["height"]], np.float32)
        self.to_processed = to_processed

    def __call__(self, pixel_values, **_):
        from transformers.models.efficientloftr.modeling_efficientloftr import EfficientLoFTRKeypointMatchingOutput

        assert pixel_values.shape[-2:] == (PROC["height"], PROC["width"])
        p0, p1, s = self.pairs[self.calls]
        self.calls += 1
        rel = [self.to_processed(p, self.scale) / np.array([PROC["width"], PROC["height"]]) for p in (p0, p1)]
        n = len(s)
        kp = torch.from_numpy(np.stack(rel).astype(np.float32))[None]
        slots = torch.arange(n)[None, None].repeat(1, 2, 1)  # column k = one match, as after align_loftr_slots
        scores = torch.from_numpy(np.asarray(s, np.float32))[None, None].repeat(1, 2, 1)
        return EfficientLoFTRKeypointMatchingOutput(matches=slots, matching_scores=scores, keypoints=kp)


def stubbed(path, monkeypatch, size, pairs, **kw):
    fe = make(path, **kw)
    stub = LoftrStub(fe.backend, size, pairs)
    monkeypatch.setattr(fe.backend.model, "forward", stub)
    return fe, stub


# ---------------------------------------------------------------------------------------------------------------
# Loading, modes, coordinates
# ---------------------------------------------------------------------------------------------------------------
def test_lightglue_from_folder_streams_and_maps_to_input_pixels(lg_dir):
    fe = make(lg_dir, max_keypoints=-1)  # all of SuperPoint's points: they cover the image
    assert fe.backend.streaming and fe.backend.n_layers == 2
    W, H = 200, 64  # wider and flatter than the processor's 128x96: unmapped points would leave the image
    first = fe.track(texture(W, H), stamp=0.0)
    assert first.is_first and first.telemetry.backend_info == "lightglue streaming, resize 200x64->128x96"
    k = first.kpts1
    assert len(k) > 20
    assert np.all((k >= -0.5) & (k < [W - 0.5, H - 0.5])), "inside the input image (pixel edges at -0.5, W-0.5)"
    assert k[:, 0].max() > 150 and k[:, 1].max() > 50, "points must span the input image, not the processed one"
    fe = make(lg_dir, max_keypoints=256)  # matching 11k points would take seconds
    k = fe.track(texture(W, H), stamp=0.0).kpts1
    second = fe.track(texture(W, H), stamp=0.1)
    tel = second.telemetry
    assert tel.backend == "hf" and tel.n_layers == 2 and 1 <= tel.stop_layer <= 2, second.reason
    assert second.ok or second.reason == "no matches"
    np.testing.assert_array_equal(second.kpts0, k)  # features of a frame are computed once and kept


def test_processor_resize_convention_is_half_pixel(lg_dir):
    """A blob at a known input pixel lands where `to_input` maps it back; plain scaling would be off."""
    from lightglue_ros.matching.hf_backend import to_input

    backend = make(lg_dir).backend
    W, H, x0, y0 = 200, 64, 123.0, 37.0
    ys, xs = np.mgrid[0:H, 0:W]
    blob = (255 * np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * 4.0 ** 2))).astype(np.uint8)
    pv = backend._preprocess(blob)[0].numpy()
    h, w = pv.shape
    ys, xs = np.mgrid[0:h, 0:w]
    c = np.array([(pv * xs).sum(), (pv * ys).sum()]) / pv.sum()
    scale = np.array([W / w, H / h], np.float32)
    assert np.abs(to_input(c[None], scale)[0] - [x0, y0]).max() < 0.05
    assert np.abs(c * scale - [x0, y0]).max() > 0.15  # the check could fail


def test_loftr_pairs_come_back_in_input_pixels(loftr_dir, monkeypatch):
    W, H = 150, 100
    rng = np.random.default_rng(1)
    p0 = rng.uniform([2, 2], [W - 3, H - 3], (40, 2)).astype(np.float32)
    p1 = (p0 + [3.25, -1.5]).astype(np.float32)
    fe, stub = stubbed(loftr_dir, monkeypatch, (W, H), [(p0, p1, np.full(40, 0.9))])
    assert not fe.backend.streaming and fe.backend.n_layers == 0
    first = fe.track(texture(W, H), stamp=0.0)
    assert first.telemetry.backend_info == "efficientloftr pairwise, resize 150x100->128x96"
    assert len(first.kpts1) == W * H  # the candidate grid: one point per pixel until the frame is matched
    r = fe.track(texture(W, H, 1), stamp=0.1)
    assert r.ok and stub.calls == 1 and r.telemetry.stop_layer == 0
    np.testing.assert_allclose(r.points0, p0, atol=1e-3)
    np.testing.assert_allclose(r.points1, p1, atol=1e-3)
    assert len(r.kpts1) == 40 and len(r.kpts0) == 40


# ---------------------------------------------------------------------------------------------------------------
# Thresholds and masks
# ---------------------------------------------------------------------------------------------------------------
def test_thresholds_reach_the_model_and_the_matches(lg_dir, loftr_dir, monkeypatch):
    assert make(lg_dir).backend.model.filter_threshold == pytest.approx(0.1)  # -1 keeps the model's own
    assert make(lg_dir, hf_threshold=0.4).backend.model.filter_threshold == pytest.approx(0.4)
    W, H = 150, 100
    p0 = np.stack([np.linspace(10, 140, 20), np.full(20, 50.0)], 1).astype(np.float32)
    scores = np.linspace(0.05, 0.95, 20)  # 10 above 0.5: more than min_keypoints
    fe, _ = stubbed(loftr_dir, monkeypatch, (W, H), [(p0, p0 + 1, scores)], hf_threshold=0.5)
    assert fe.backend.model.config.coarse_matching_threshold == pytest.approx(0.5)
    fe.track(texture(W, H))
    r = fe.track(texture(W, H, 1))
    assert r.ok and np.all(r.scores > 0.5) and r.num_matches == int((scores > 0.5).sum())
    np.testing.assert_allclose(r.points0, p0[scores > 0.5], atol=1e-3)


def test_loftr_matches_on_masked_pixels_are_dropped(loftr_dir, monkeypatch):
    W, H = 150, 100
    xs = np.arange(5, 145, 2.0)
    p0 = np.stack([xs, np.full(len(xs), 30.0)], 1).astype(np.float32)
    p1 = np.stack([xs, np.full(len(xs), 70.0)], 1).astype(np.float32)
    fe, _ = stubbed(loftr_dir, monkeypatch, (W, H), [(p0, p1, np.full(len(xs), 0.9))])
    m0 = np.zeros((H, W), np.uint8)
    m0[:, 100:] = 255  # reference: right part masked
    m1 = np.zeros((H, W), np.uint8)
    m1[:, :41] = 255  # current: left part masked
    fe.track(texture(W, H), mask=m0)
    r = fe.track(texture(W, H, 1), mask=m1)
    keep = (np.round(xs) < 100) & (np.round(xs) >= 41)
    assert r.ok and r.num_matches == int(keep.sum())
    np.testing.assert_allclose(r.points0[:, 0], xs[keep], atol=1e-3)


def test_lightglue_masked_keypoints_stay_out_of_the_model(lg_dir, monkeypatch):
    fe = make(lg_dir, hf_threshold=0.0)
    seen = []
    real = fe.backend.model._match_image_pair

    def spy(kpts, desc, h, w, mask=None):
        seen.append(mask.clone())
        return real(kpts, desc, h, w, mask=mask)

    monkeypatch.setattr(fe.backend.model, "_match_image_pair", spy)
    W, H = 200, 64
    mask = np.zeros((H, W), np.uint8)
    mask[:, :100] = 1
    first = fe.track(texture(W, H), mask=mask)
    r = fe.track(texture(W, H), mask=mask)
    valid = np.round(first.kpts1[:, 0]) >= 100
    assert 0 < valid.sum() < len(valid)
    assert int(seen[0][0, 0].sum()) == int(valid.sum()) == int(seen[0][0, 1].sum())
    if r.num_matches:
        assert np.all(np.round(r.points0[:, 0]) >= 100) and np.all(np.round(r.points1[:, 0]) >= 100)


# ---------------------------------------------------------------------------------------------------------------
# Track ids through the association of a detector-free matcher
# ---------------------------------------------------------------------------------------------------------------
def _motion(p: np.ndarray, t: int, W: int, H: int) -> np.ndarray:
    """Physical points (frame-0 pixels) seen in frame t: 4 degrees of rotation and a shift per frame."""
    a = np.deg2rad(4.0 * t)
    c = np.array([W / 2, H / 2])
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return ((p - c) @ R.T + c + [1.5 * t, -0.7 * t]).astype(np.float32)


def _sequence(W, H, frames, ref_of, seed=0):
    """Stub pairs and the physical point of each match: ref side jittered (<= 0.5 px), current side exact."""
    rng = np.random.default_rng(seed)
    gy, gx = np.mgrid[12:H - 12:9, 12:W - 12:9]  # 9 px apart: no two points within 2 radii
    phys = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32) + rng.uniform(-1, 1, (gx.size, 2))
    pairs, who = [], []
    for t in range(1, frames):
        q0, q1 = _motion(phys, ref_of(t), W, H), _motion(phys, t, W, H)
        inside = np.all((q0 > 1) & (q0 < [W - 2, H - 2]) & (q1 > 1) & (q1 < [W - 2, H - 2]), axis=1)
        use = np.nonzero(inside & (rng.random(len(phys)) < 0.8))[0]  # some points missed in each pair
        rng.shuffle(use)  # the model's order means nothing
        jitter = rng.uniform(-0.35, 0.35, (len(use), 2))
        pairs.append(((q0[use] + jitter).astype(np.float32), q1[use], rng.uniform(0.3, 1.0, len(use))))
        who.append(use)
    return pairs, who


@pytest.mark.parametrize("keyframe", [False, True])
def test_track_ids_follow_the_physical_points(loftr_dir, monkeypatch, keyframe):
    """Consecutive frames (auto_promote) and a kept keyframe: a point matched again keeps its id, new ones don't
    reuse any, and every TrackResult pairs the model's own coordinates."""
    W, H, frames = 150, 100, 6
    ref_of = (lambda t: 0) if keyframe else (lambda t: t - 1)
    pairs, who = _sequence(W, H, frames, ref_of)
    fe, _ = stubbed(loftr_dir, monkeypatch, (W, H), pairs, auto_promote=not keyframe)
    fe.track(texture(W, H), stamp=0.0)
    ids_of: dict = {}  # physical point -> track id
    seen_ids: set = set()
    kept = fresh = 0
    prev_matched: set = set()
    for t in range(1, frames):
        r = fe.track(texture(W, H, t), stamp=float(t))
        assert r.ok, r.reason
        p0, p1, _ = pairs[t - 1]
        np.testing.assert_allclose(r.points0, p0, atol=1e-3)
        np.testing.assert_allclose(r.points1, p1, atol=1e-3)
        ids = r.track_ids.tolist()
        assert len(set(ids)) == len(ids), "ids are unique within a frame"
        for phys, tid in zip(who[t - 1].tolist(), ids):
            # The reference holds this point when the previous pair (keyframe: any earlier pair) matched it.
            if phys in ids_of and (keyframe or phys in prev_matched):
                assert tid == ids_of[phys], f"point {phys} lost its id in frame {t}"
                kept += 1
            else:
                assert tid not in seen_ids, f"a new point reused id {tid}"
                fresh += 1
            ids_of[phys] = tid
        seen_ids |= set(ids)
        prev_matched = set(who[t - 1].tolist())
    assert kept > 3 * fresh / 4 and fresh > 0, (kept, fresh)


def test_track_ids_split_beyond_the_radius(loftr_dir, monkeypatch):
    """A reference-side point 1.5 px from where the reference has one keeps its id; 3 px away it is a new point."""
    W, H = 150, 100
    p = np.stack(np.meshgrid([30.0, 60.0, 90.0, 120.0], [30.0, 70.0]), -1).reshape(-1, 2).astype(np.float32)
    shift = np.array([1.0, 0.5], np.float32)
    first = (p, p + shift, np.ones(len(p)))
    ids = {}
    for offset in (1.5, 3.0):
        q = p + shift + [offset, 0.0]  # frame 1 has its points at p + shift
        fe, _ = stubbed(loftr_dir, monkeypatch, (W, H), [first, (q, q + shift, np.ones(len(p)))])
        fe.track(texture(W, H))
        a = fe.track(texture(W, H, 1)).track_ids
        ids[offset] = (a, fe.track(texture(W, H, 2)).track_ids)
    np.testing.assert_array_equal(*ids[1.5])  # within hf_track_radius = 2 px
    a, b = ids[3.0]
    assert not set(a.tolist()) & set(b.tolist())


def test_lightglue_runs_pairwise_where_the_model_hides_its_parts(lg_dir):
    """The fallback for a LightGlue without a separate detector: both images per call, LightGlue's layer stats."""
    fe = make(lg_dir, hf_threshold=0.0, min_keypoints=1)
    fe.backend.streaming, fe.backend.mode = False, "pairwise"
    W, H = 200, 64
    first = fe.track(texture(W, H))
    assert first.telemetry.backend_info.startswith("lightglue pairwise") and len(first.kpts1) == W * H
    for i in range(2):
        r = fe.track(texture(W, H))
        assert 1 <= r.telemetry.stop_layer <= 2 and r.telemetry.n_layers == 2, r.reason
        assert r.ok or r.reason == "no matches"
        if r.ok:
            assert len(set(r.track_ids.tolist())) == r.num_matches
            assert np.all((r.points1 >= -0.5) & (r.points1 < [W - 0.5, H - 0.5]))


def test_loftr_slots_are_aligned(loftr_dir):
    """transformers 5.23.0 pairs column k of two differently ordered rows; the backend makes them one match."""
    transformers = _transformers()
    fe = make(loftr_dir, hf_threshold=0.0)
    model = fe.backend.model
    side, b = 8, model.config.coarse_matching_border_removal
    inner = [r * side + c for r in range(b, side - b) for c in range(b, side - b)]
    rng = np.random.default_rng(0)
    truth = dict(zip(inner, rng.permutation(inner).tolist()))
    scores = torch.zeros(1, side * side, side * side)
    for i, j in truth.items():
        scores[0, i, j] = 0.9
    grid = scores.view(1, side, side, side, side)

    def columns(idx):
        both = (idx[0, 0] > -1) & (idx[0, 1] > -1)
        return {(int(i), int(j)) for i, j in zip(idx[0, 0][both], idx[0, 1][both])}

    assert columns(model._get_matches_from_scores(grid)[0]) == set(truth.items())
    if transformers.__version__ == "5.23.0":
        assert fe.backend.loftr_fixed
        raw = type(model)._get_matches_from_scores(model, grid)[0]
        assert columns(raw) != set(truth.items())
    # The whole network runs with the aligned rows (threshold 0: random weights do match something).
    W, H = 150, 100
    fe.track(texture(W, H))
    r = fe.track(texture(W, H, 1))
    assert r.ok and r.num_matches >= 8, r.reason
    assert np.all((r.points0 >= -0.5) & (r.points0 <= [W - 0.5, H - 0.5]))


# ---------------------------------------------------------------------------------------------------------------
# Bad input and start-up errors
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["lightglue", "loftr"])
def test_bad_input_gives_reasons_not_exceptions(lg_dir, loftr_dir, monkeypatch, which):
    fe = make(lg_dir if which == "lightglue" else loftr_dir)
    W, H = 150, 100
    assert fe.track(texture(W, H)).is_first
    for bad in (None, np.zeros((5, 5, 3), np.uint8), np.zeros((H, W, 2), np.uint8), "image"):
        r = fe.track(bad)
        assert not r.ok and r.reason, bad
    assert fe.track(np.full((H, W), np.nan, np.float32)).telemetry.backend == "hf"  # NaN -> black: no raise
    r = fe.track(texture(W, H), mask=np.zeros((10, 10), np.uint8))
    assert not r.ok and "mask size" in r.reason
    full = np.ones((H, W), np.uint8)
    r = fe.track(texture(W, H), mask=full)
    assert not r.ok and "too few keypoints" in r.reason

    def broken(*args, **kwargs):
        raise RuntimeError("device lost")

    target = "_match_image_pair" if which == "lightglue" else "forward"
    monkeypatch.setattr(fe.backend.model, target, broken)
    fe.track(texture(W, H))
    r = fe.track(texture(W, H, 1))
    assert not r.ok and r.reason == "front end error: RuntimeError: device lost"
    assert fe.track(texture(64, 48)).is_first  # another camera mode starts over


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now fails
    with pytest.raises(FrontEndError, match=r"pip install \.\[hf\]"):
        FrontEnd(FrontEndConfig(backend="hf", hf_model="ETH-CVG/lightglue_superpoint", device="cpu"))


def test_start_up_errors_name_the_model_and_the_fix(tmp_path, lg_dir, monkeypatch):
    tf = _transformers()
    with pytest.raises(FrontEndError, match="needs hf_model"):
        FrontEnd(FrontEndConfig(backend="hf", device="cpu"))
    sp = tmp_path / "superpoint"
    tf.SuperPointForKeypointDetection(tf.SuperPointConfig(encoder_hidden_sizes=[8, 8, 16, 16],
                                                          decoder_hidden_size=32,
                                                          descriptor_decoder_dim=32)).save_pretrained(sp)
    with pytest.raises(FrontEndError, match=r"'superpoint' model, not a keypoint-matching model"):
        make(sp)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrontEndError, match=r"empty.*save_pretrained"):
        make(tmp_path / "empty")
    bare = tmp_path / "no_processor"
    bare.mkdir()
    for f in lg_dir.iterdir():
        if f.name != "preprocessor_config.json":
            (bare / f.name).write_bytes(f.read_bytes())
    with pytest.raises(FrontEndError, match="no usable image processor"):
        make(bare)
    with pytest.raises(FrontEndError, match="both on or both off"):
        make(lg_dir, width_confidence=-1.0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FrontEndError, match=r"HF_HUB_OFFLINE.*hf download lightglue-ros-test/no-such-model"):
        make("lightglue-ros-test/no-such-model")


def test_cli_flags_build_the_backend(lg_dir):
    import argparse

    from lightglue_ros.tools import cli

    p = argparse.ArgumentParser()
    cli.add_frontend_args(p)
    args = p.parse_args(["--backend", "hf", "--hf-model", str(lg_dir), "--hf-threshold", "0.3", "--device", "cpu"])
    cfg = cli.frontend_config_from_args(args)
    assert (cfg.backend, cfg.hf_model, cfg.hf_threshold) == ("hf", str(lg_dir), 0.3)
    assert FrontEnd(cfg).backend.model.filter_threshold == pytest.approx(0.3)
    from lightglue_ros.tools.bench import backend_config

    assert backend_config(f"hf:{lg_dir}", device="cpu").hf_model == str(lg_dir)  # bench accuracy --backends
    assert backend_config("hf:ETH-CVG/lightglue_superpoint").hf_model == "ETH-CVG/lightglue_superpoint"
    assert backend_config("hf") is None


def test_bench_frontend_times_an_hf_row(lg_dir, tmp_path, capsys):
    """bench frontend --backends hf:DIR: a transformers matcher row through our FrontEnd, beside ORB."""
    import json

    from lightglue_ros.tools import cli

    js = tmp_path / "b.json"
    rc = cli.main(["bench", "frontend", "synthetic:frames=3,width=160,height=128", "--runs", "1", "--device", "cpu",
                   "--max-keypoints", "64", "--threads", "1", "--backends", f"hf:{lg_dir},orb", "--json", str(js)])
    assert rc == 0, capsys.readouterr().err
    rows = {r["name"]: r for r in json.loads(js.read_text())["rows"]}
    assert set(rows) == {f"hf:{lg_dir}", "orb"}
    assert rows[f"hf:{lg_dir}"]["samples"] == 2 and rows[f"hf:{lg_dir}"]["total_ms"] > 0
    assert rows[f"hf:{lg_dir}"]["stop_layer"] is not None  # transformers' LightGlue reports its layers


# ---------------------------------------------------------------------------------------------------------------
# Real weights, where downloaded
# ---------------------------------------------------------------------------------------------------------------
def _real_models():
    root = os.environ.get("LIGHTGLUE_ROS_HF_MODELS", "")
    if not root:
        return []
    root = Path(root)
    return sorted(p for p in [root, *root.iterdir()] if p.is_dir() and (p / "config.json").is_file())


@pytest.mark.parametrize("model", _real_models() or [None])
def test_real_weights_match_known_geometry(model):
    """Downloaded models (``hf download ETH-CVG/lightglue_superpoint --local-dir DIR/lightglue_superpoint`` and
    ``zju-community/efficientloftr``): ground-truth correspondences on the synthetic scene and a rotated pair."""
    if model is None:
        pytest.skip("set LIGHTGLUE_ROS_HF_MODELS to a folder of downloaded hf models (one per subfolder)")
    from lightglue_ros.io.datasets import synthetic_sequence
    from lightglue_ros.io.synthetic import SyntheticConfig, project_correspondences

    frames = list(synthetic_sequence(SyntheticConfig(seed=3, frames=4, width=320, height=240, motion="orbit")))
    fe = make(model)
    fe.track(frames[0].image)
    for i in range(1, len(frames)):
        r = fe.track(frames[i].image)
        assert r.ok and r.num_matches >= 50, r.reason
        gt, valid = project_correspondences(frames[i - 1], frames[i], r.points0)
        good = valid & (np.linalg.norm(gt - r.points1, axis=1) < 3.0)
        assert good.sum() > 0.8 * valid.sum() and valid.sum() > 30, (good.sum(), valid.sum())
    # 10 degrees in the image plane: matches out of raster order (a pairing by position would fail here).
    img = frames[0].image
    h, w = img.shape[:2]
    A = cv2.getRotationMatrix2D((w / 2, h / 2), 10.0, 1.0)
    fe.reset()
    fe.track(img)
    r = fe.track(cv2.warpAffine(img, A, (w, h), borderMode=cv2.BORDER_REFLECT))
    assert r.ok and r.num_matches >= 50, r.reason
    err = np.linalg.norm(r.points0 @ A[:, :2].T + A[:, 2] - r.points1, axis=1)
    assert np.median(err) < 2.0, np.median(err)
