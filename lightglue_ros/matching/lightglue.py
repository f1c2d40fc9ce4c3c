"""LightGlue: local feature matching at light speed (Lindenberger, Sarlin, Pollefeys, ICCV 2023).

Written for this package from the paper, state-dict compatible with the official checkpoints
(``aliked_lightglue.pth``, ``disk_lightglue.pth``) and with LighterGlue (``xfeat-lighterglue.pt``, the LightGlue the
XFeat authors trained for XFeat's 64-D descriptors: width 96, 6 layers, 1 head). The parts, in the paper's words:

- Positional encoding: a learned Fourier projection of the normalised keypoint position, applied as a
  *rotary* encoding to queries and keys of self-attention only (cross-attention is position-free).
- Transformer layer: one self-attention block per image, then a bidirectional cross-attention block that
  shares one similarity matrix for both directions.
- Match assignment: similarity of projected descriptors + a matchability score per point, combined by a
  double (row and column) log-softmax; mutual nearest neighbours above ``filter_threshold`` become matches.
- Adaptive depth: after each layer but the last, a token confidence head says how sure each point is of its
  final assignment; when the fraction of confident points exceeds ``depth_confidence`` the network stops and
  uses the assignment head of that layer.
- Adaptive width: points that are confidently unmatchable are pruned from the following layers.

Attention in bf16 (``attention_precision``, our addition for CPUs with bf16 matrix units): the fused attention
calls take bf16 copies of queries, keys and values (the kernel accumulates in fp32) and return fp32; every other
part stays fp32. Such a kernel is built for each new pair of point counts (~1.3 ms each on an AMX CPU, more than
the call itself), and pruning makes new counts every layer, so in bf16 pruning keeps the most matchable of the
points it would drop until each count is a multiple of ``PRUNE_BUCKET``: the counts then recur from frame to frame.

Masks (our addition for robotics): points marked invalid (specular highlights, the robot's own body) are
removed before the first layer, which is exactly an attention mask where they neither attend nor are attended,
and they can never be matched. Removing them is cheaper than masking a dense attention matrix.

One image pair per call (the streaming front end's case); inputs may carry a leading batch dimension of 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from lightglue_ros.features.weights import load_checkpoint, load_strict


@dataclass(frozen=True)
class Checkpoint:
    """One trained LightGlue: its file and the architecture it was trained with."""

    filename: str
    input_dim: int  # descriptor size of the features it matches
    descriptor_dim: int = 256  # transformer width
    n_layers: int = 9
    num_heads: int = 4
    prefix: str = ""  # the file's keys of the matcher start with this
    ignored_prefixes: tuple = ()  # other keys of the file, which are not the matcher's


CHECKPOINTS = {
    "aliked": Checkpoint("aliked_lightglue.pth", 128),
    "disk": Checkpoint("disk_lightglue.pth", 128),
    # LighterGlue. The file also holds a copy of the XFeat extractor (``extractor.*``: xfeat.pt's weights with
    # BatchNorm statistics that drifted while the matcher trained); the reference pipeline extracts with xfeat.pt.
    "xfeat": Checkpoint("xfeat-lighterglue.pt", 64, 96, 6, 1, prefix="matcher.", ignored_prefixes=("extractor.",)),
}


CROSS_ATTENTION = ("auto", "fused", "shared")
ATTENTION_PRECISION = {"fp32": None, "bf16": torch.bfloat16}
# In bf16, pruned point counts are rounded up to a multiple of this (module doc). 32 keeps at most 31 extra points
# per image; 64 gave the same speed on TUM and drive pairs.
PRUNE_BUCKET = 32


@dataclass
class LightGlueConfig:
    """LightGlue settings: the checkpoint (features), its architecture and the adaptive depth and width."""

    features: str = "aliked"  # aliked | disk | xfeat: picks the checkpoint and its architecture
    descriptor_dim: Optional[int] = None  # transformer width; None = the checkpoint's (256; LighterGlue 96)
    n_layers: Optional[int] = None  # None = the checkpoint's (9; LighterGlue 6)
    num_heads: Optional[int] = None  # None = the checkpoint's (4; LighterGlue 1)
    depth_confidence: float = 0.95  # early exit; -1 disables
    width_confidence: float = 0.99  # point pruning; -1 disables
    filter_threshold: float = 0.1  # match score threshold
    # Pruning costs a gather per layer; below this many points it does not pay. The reference prunes always on
    # CPU and from 1024 points on CUDA (1536 with fused attention); -1 = always.
    pruning_min_points_cpu: int = -1
    pruning_min_points_cuda: int = 1024
    # Cross-attention: "shared" = one similarity matrix for both directions (as trained; on a CPU the column
    # softmax reads it transposed), "fused" = two fused attention calls (the same values within float rounding;
    # on a CPU 2.3x faster at 1024 points, 96 wide, 3.1x at 256 wide), "auto" = fused on CUDA, shared on a CPU.
    # None = "auto" for aliked/disk (their results stay bit-identical to before) and "fused" for xfeat.
    cross_attention: Optional[str] = None
    # "fp32", or "bf16": the fused attention calls in bf16 (module doc; on a CPU with AMX 3x faster per call, and
    # over TUM and drive pairs the whole matcher 19-23 % faster with the same pose AUC within noise).
    attention_precision: str = "fp32"
    weights: str = ""  # explicit checkpoint path; "" = search (see features/weights.py)

    def __post_init__(self):
        if self.features not in CHECKPOINTS:
            raise ValueError(f"unknown features '{self.features}' (known: {', '.join(CHECKPOINTS)})")
        ckpt = CHECKPOINTS[self.features]
        for name in ("descriptor_dim", "n_layers", "num_heads"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(ckpt, name))
        if self.cross_attention is None:
            self.cross_attention = "fused" if self.features == "xfeat" else "auto"
        if self.cross_attention not in CROSS_ATTENTION:
            raise ValueError(f"cross_attention must be one of {CROSS_ATTENTION}, got {self.cross_attention!r}")
        if self.attention_precision not in ATTENTION_PRECISION:
            raise ValueError(f"attention_precision must be one of {tuple(ATTENTION_PRECISION)}, "
                             f"got {self.attention_precision!r}")


@dataclass
class MatchResult:
    """Matches of one pair, their scores, the layer the matcher stopped at and the points it pruned."""

    matches: torch.Tensor  # (M,2) long, indices into keypoints0 / keypoints1
    scores: torch.Tensor  # (M,) float
    matches0: torch.Tensor  # (N0,) long, -1 = unmatched
    matches1: torch.Tensor  # (N1,) long
    stop_layer: int  # number of layers run (1..n_layers)
    pruned0: int  # points of image 0 pruned by adaptive width (masked points not counted)
    pruned1: int
    prune_layer0: torch.Tensor = field(default=None)  # (N0,) layers each point took part in
    prune_layer1: torch.Tensor = field(default=None)


@dataclass
class Prepared:
    """One image's matcher inputs that do not depend on the other image (``LightGlue.prepare``).

    ``first_self`` is the first layer's self-attention of all the image's points, filled by the first match that
    computes it (an unmasked one): a keyframe matched against many frames runs it once, and a frame matched as
    current runs it in that match and reuses it as the next reference.
    """

    x: torch.Tensor  # (1, N, width) projected descriptors
    enc: torch.Tensor  # rotary positional encoding (cos, signed sin)
    first_self: Optional[torch.Tensor] = None


def normalize_keypoints(kpts: torch.Tensor, size: Optional[torch.Tensor]) -> torch.Tensor:
    """Pixels -> roughly [-1, 1], centred on the image and scaled by its longer side (aspect kept)."""
    if size is None:
        if kpts.shape[-2] == 0:
            return kpts
        size = 1 + kpts.max(-2).values - kpts.min(-2).values
    size = size.to(kpts)
    return (kpts - size / 2) / (size.max(-1).values / 2)


class FourierPositionalEncoding(nn.Module):
    """Learned Fourier features of the 2D position, returned as (cos, signed sin) for the rotary encoding."""

    def __init__(self, in_dim: int, head_dim: int):
        super().__init__()
        self.Wr = nn.Linear(in_dim, head_dim // 2, bias=False)
        # The rotary turn of a channel pair (x0, x1) -> (-x1, x0) is a swap and a sign; the sign goes into the
        # sine here, once per image, instead of a negation in every attention layer.
        self.register_buffer("pair_sign", torch.tensor([-1.0, 1.0]).repeat(head_dim // 2), persistent=False)

    def forward(self, kpts: torch.Tensor) -> torch.Tensor:
        proj = self.Wr(kpts)  # (B, N, head_dim/2)
        # Each frequency rotates one pair of channels: repeat to (c0, c0, c1, c1, ...).
        enc = torch.stack([proj.cos(), proj.sin()], 0).unsqueeze(-3)  # (2, B, 1, N, head_dim/2)
        enc = enc.repeat_interleave(2, dim=-1)
        return torch.stack([enc[0], enc[1] * self.pair_sign])


def swap_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (x1, x0, x3, x2, ...): one copy, where stacking the negated halves takes four."""
    return x.unflatten(-1, (-1, 2)).flip(-1).flatten(start_dim=-2)


def apply_rotary(enc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Rotate feature pairs by the rotary positional encoding (cos and signed sin stacked).

    ``x * cos + (-x1, x0, -x3, x2, ...) * sin``, with the sign already in ``enc[1]``; bit-identical.
    """
    return x * enc[0] + swap_pairs(x) * enc[1]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dtype: Optional[torch.dtype]) -> torch.Tensor:
    """Fused scaled dot-product attention, in ``dtype`` when given (the result in the inputs' dtype)."""
    if dtype is None or dtype == q.dtype:
        return F.scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous())
    return F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype)).to(q.dtype)


def feed_forward(dim: int) -> nn.Sequential:
    """Build the update MLP of both attention blocks: [x | message] -> residual update."""
    return nn.Sequential(
        nn.Linear(2 * dim, 2 * dim), nn.LayerNorm(2 * dim, elementwise_affine=True), nn.GELU(), nn.Linear(2 * dim, dim)
    )


class SelfAttentionBlock(nn.Module):
    """Self-attention within one image, keypoint positions entering through the rotary encoding."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attention_dtype: Optional[torch.dtype] = None  # see LightGlueConfig.attention_precision
        self.Wqkv = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.ffn = feed_forward(dim)

    def forward(self, x: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
        # The checkpoint interleaves q, k, v per channel: (heads, head_dim, 3).
        qkv = self.Wqkv(x).unflatten(-1, (self.heads, -1, 3)).transpose(1, 2)
        q, k, v = qkv[..., 0], qkv[..., 1], qkv[..., 2]
        q, k = apply_rotary(enc, q), apply_rotary(enc, k)
        context = attention(q, k, v, self.attention_dtype)
        message = self.out_proj(context.transpose(1, 2).flatten(start_dim=-2))
        return x + self.ffn(torch.cat([x, message], -1))


class CrossAttentionBlock(nn.Module):
    """Bidirectional cross-attention: one similarity matrix, softmax over rows for 0->1 and columns for 1->0."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.mode = "auto"  # see LightGlueConfig.cross_attention
        self.attention_dtype: Optional[torch.dtype] = None  # see LightGlueConfig.attention_precision (fused only)
        self.to_qk = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.ffn = feed_forward(dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor):
        qk0, qk1 = self._split(self.to_qk(x0)), self._split(self.to_qk(x1))
        v0, v1 = self._split(self.to_v(x0)), self._split(self.to_v(x1))
        if self.mode == "fused" or (self.mode == "auto" and x0.is_cuda):
            # Two fused attention calls beat one explicit similarity matrix on the GPU, and on a CPU too (no
            # N x M matrix written, softmaxed twice and read transposed).
            m0 = attention(qk0, qk1, v1, self.attention_dtype)
            m1 = attention(qk1, qk0, v0, self.attention_dtype)
        else:
            scale = qk0.shape[-1] ** -0.25  # split the 1/sqrt(d) between both sides, as trained
            sim = (qk0 * scale) @ (qk1 * scale).transpose(-1, -2)
            m0 = sim.softmax(-1) @ v1
            m1 = sim.transpose(-1, -2).softmax(-1) @ v0
        m0 = self.to_out(m0.transpose(1, 2).flatten(start_dim=-2))
        m1 = self.to_out(m1.transpose(1, 2).flatten(start_dim=-2))
        return x0 + self.ffn(torch.cat([x0, m0], -1)), x1 + self.ffn(torch.cat([x1, m1], -1))


class TransformerLayer(nn.Module):
    """One LightGlue layer: self-attention in each image, then cross-attention between them."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.self_attn = SelfAttentionBlock(dim, heads)
        self.cross_attn = CrossAttentionBlock(dim, heads)

    def forward(self, x0, x1, enc0, enc1):
        return self.cross_attn(self.self_attn(x0, enc0), self.self_attn(x1, enc1))


class TokenConfidence(nn.Module):
    """Per-point confidence that its current assignment is final (drives the early exit)."""

    def __init__(self, dim: int):
        super().__init__()
        self.token = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.token(x).squeeze(-1)


class MatchAssignment(nn.Module):
    """The assignment head: similarity of the projected descriptors plus each point's matchability."""

    def __init__(self, dim: int):
        super().__init__()
        self.matchability = nn.Linear(dim, 1)
        self.final_proj = nn.Linear(dim, dim)

    def matchability_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.matchability(x)).squeeze(-1)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """Log assignment matrix (B, M+1, N+1); the last row/column are the 'unmatched' dustbins."""
        d = x0.shape[-1]
        md0, md1 = self.final_proj(x0) / d**0.25, self.final_proj(x1) / d**0.25
        sim = md0 @ md1.transpose(-1, -2)
        z0, z1 = self.matchability(x0), self.matchability(x1)
        b, m, n = sim.shape
        scores = sim.new_zeros((b, m + 1, n + 1))
        scores[:, :m, :n] = (
            F.log_softmax(sim, 2)
            + F.log_softmax(sim.transpose(-1, -2).contiguous(), 2).transpose(-1, -2)
            + F.logsigmoid(z0)
            + F.logsigmoid(z1).transpose(1, 2)
        )
        scores[:, :-1, -1] = F.logsigmoid(-z0.squeeze(-1))
        scores[:, -1, :-1] = F.logsigmoid(-z1.squeeze(-1))
        return scores


def round_up_kept(keep: torch.Tensor, prob: torch.Tensor, bucket: int) -> torch.Tensor:
    """Keep the most matchable dropped points too, until the count kept is a multiple of ``bucket`` (or all)."""
    kept, n = int(keep.sum()), keep.shape[0]
    extra = min(n, -(-kept // bucket) * bucket) - kept
    if extra <= 0:
        return keep
    keep = keep.clone()
    keep[prob.masked_fill(keep, -1.0).topk(extra).indices] = True
    return keep


def mutual_matches(scores: torch.Tensor, threshold: float):
    """Mutual nearest neighbours of the assignment whose probability exceeds ``threshold``.

    Returns matches0 (M,), matches1 (N,) with -1 for unmatched, and the score of each of image 0's points.
    """
    s = scores[0, :-1, :-1]
    max0, max1 = s.max(1), s.max(0)
    m0, m1 = max0.indices, max1.indices
    mutual0 = torch.arange(len(m0), device=s.device) == m1[m0]
    mutual1 = torch.arange(len(m1), device=s.device) == m0[m1]
    score0 = torch.where(mutual0, max0.values.exp(), s.new_zeros(()))
    valid0 = mutual0 & (score0 > threshold)
    valid1 = mutual1 & valid0[m1]
    return torch.where(valid0, m0, -1), torch.where(valid1, m1, -1), score0


# Keys of old checkpoints that the released model never reads (a legacy learned scale of the assignment).
LEGACY_UNUSED = ("log_assignment.{}.r",)


def matcher_state(state: dict, ckpt: Checkpoint) -> dict:
    """Return the matcher's tensors of a checkpoint file, prefix removed.

    Keys that are neither the matcher's nor known to be something else (``ignored_prefixes``) are kept, so that
    strict loading reports them.
    """
    if not ckpt.prefix:
        return state
    out = {}
    for key, value in state.items():
        if key.startswith(ckpt.prefix):
            out[key[len(ckpt.prefix):]] = value
        elif not key.startswith(ckpt.ignored_prefixes):
            out[key] = value
    return out


def rename_legacy(state: dict, n_layers: int) -> dict:
    """Old checkpoints (disk_lightglue.pth) keep ``self_attn.N`` / ``cross_attn.N`` at top level."""
    out = {}
    unused = {p.format(i) for p in LEGACY_UNUSED for i in range(n_layers)}
    for key, value in state.items():
        if key in unused:
            continue
        for kind in ("self_attn", "cross_attn"):
            head = key.split(".")
            if head[0] == kind and head[1].isdigit():
                key = ".".join(["transformers", head[1], kind] + head[2:])
        out[key] = value
    return out


class LightGlue(nn.Module):
    """LightGlue (Lindenberger et al., ICCV 2023) with adaptive depth and width; loads a checkpoint strictly."""

    def __init__(self, config: Optional[LightGlueConfig] = None, load_weights: bool = True):
        super().__init__()
        self.conf = conf = config or LightGlueConfig()
        ckpt = CHECKPOINTS[conf.features]
        d, h, n = conf.descriptor_dim, conf.num_heads, conf.n_layers
        self.input_proj = nn.Linear(ckpt.input_dim, d) if ckpt.input_dim != d else nn.Identity()
        self.posenc = FourierPositionalEncoding(2, d // h)
        self.transformers = nn.ModuleList([TransformerLayer(d, h) for _ in range(n)])
        dtype = ATTENTION_PRECISION[conf.attention_precision]
        for layer in self.transformers:
            layer.cross_attn.mode = conf.cross_attention
            layer.self_attn.attention_dtype = layer.cross_attn.attention_dtype = dtype
        self.prune_bucket = PRUNE_BUCKET if dtype is not None else 0
        self.log_assignment = nn.ModuleList([MatchAssignment(d) for _ in range(n)])
        self.token_confidence = nn.ModuleList([TokenConfidence(d) for _ in range(n - 1)])
        # Per-layer exit threshold: strict early on, looser later (paper, Sec. 3.3).
        thresholds = [min(1.0, 0.8 + 0.1 * math.exp(-4.0 * i / n)) for i in range(n)]
        self.register_buffer("confidence_thresholds", torch.tensor(thresholds), persistent=False)
        if load_weights:
            path, state = load_checkpoint(ckpt.filename, conf.weights)
            load_strict(self, rename_legacy(matcher_state(state, ckpt), n), path, ckpt.filename)
        self.eval()

    # ---- adaptive depth and width -------------------------------------------------------------------------
    def should_stop(self, conf0: torch.Tensor, conf1: torch.Tensor, layer: int, num_points: int) -> bool:
        """Stop when more than ``depth_confidence`` of all points are confident.

        Pruned points count as confident: they left because they were sure to be unmatchable.
        """
        threshold = self.confidence_thresholds[layer]
        unsure = (conf0 < threshold).sum() + (conf1 < threshold).sum()
        return bool(1.0 - unsure.float() / num_points > self.conf.depth_confidence)

    def keep_mask(self, x: torch.Tensor, conf: Optional[torch.Tensor], layer: int) -> torch.Tensor:
        """Points to keep: matchable enough, or not yet confident about it (never prune an unsure point)."""
        prob = self.log_assignment[layer].matchability_prob(x)[0]
        keep = prob > (1 - self.conf.width_confidence)
        if conf is not None:
            keep |= conf[0] <= self.confidence_thresholds[layer]
        if self.prune_bucket:
            keep = round_up_kept(keep, prob, self.prune_bucket)
        return keep

    def pruning_min_points(self, device: torch.device) -> int:
        return self.conf.pruning_min_points_cuda if device.type == "cuda" else self.conf.pruning_min_points_cpu

    # ---- forward ------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def prepare(self, kpts: torch.Tensor, desc: torch.Tensor, size: Optional[torch.Tensor]) -> Prepared:
        """Do the per-image work that does not depend on the other image: projection and positional encoding.

        The streaming front end caches the result per frame; ``forward`` adds the first self-attention to it
        (see `Prepared`).
        """
        kpts = kpts.reshape(1, -1, 2).float()
        desc = desc.reshape(1, kpts.shape[1], desc.shape[-1])
        return Prepared(self.input_proj(desc), self.posenc(normalize_keypoints(kpts, size)))

    def _first_self_attention(self, prepared: Prepared, x: torch.Tensor, enc: torch.Tensor, masked: bool):
        """Return the first layer's self-attention of ``x``: cached in ``prepared``, recomputed for a mask.

        A masked point must not be attended to from the first layer on, so a masked image runs it on the points
        left and leaves the cache alone.
        """
        if masked:
            return self.transformers[0].self_attn(x, enc)
        if prepared.first_self is None:
            prepared.first_self = self.transformers[0].self_attn(x, enc)
        return prepared.first_self

    @torch.inference_mode()
    def forward(
        self,
        kpts0: torch.Tensor,
        desc0: torch.Tensor,
        kpts1: torch.Tensor,
        desc1: torch.Tensor,
        size0: Optional[torch.Tensor] = None,
        size1: Optional[torch.Tensor] = None,
        mask0: Optional[torch.Tensor] = None,
        mask1: Optional[torch.Tensor] = None,
        prepared0=None,
        prepared1=None,
    ) -> MatchResult:
        """Match two keypoint sets. ``size`` = (w, h) of each image; ``mask`` True = valid point."""
        n0, n1 = kpts0.reshape(-1, 2).shape[0], kpts1.reshape(-1, 2).shape[0]
        prepared0 = prepared0 if prepared0 is not None else self.prepare(kpts0, desc0, size0)
        prepared1 = prepared1 if prepared1 is not None else self.prepare(kpts1, desc1, size1)
        x0, enc0, x1, enc1 = prepared0.x, prepared0.enc, prepared1.x, prepared1.enc
        device = x0.device
        ind0 = torch.arange(n0, device=device)
        ind1 = torch.arange(n1, device=device)
        if mask0 is not None:
            ind0 = ind0[mask0.reshape(-1).to(device).bool()]
        if mask1 is not None:
            ind1 = ind1[mask1.reshape(-1).to(device).bool()]
        masked0, masked1 = len(ind0) < n0, len(ind1) < n1
        if masked0:
            x0, enc0 = x0[:, ind0], enc0[..., ind0, :]
        if masked1:
            x1, enc1 = x1[:, ind1], enc1[..., ind1, :]
        valid0, valid1 = len(ind0), len(ind1)
        layers_run0 = torch.zeros(n0, dtype=torch.long, device=device)
        layers_run1 = torch.zeros(n1, dtype=torch.long, device=device)

        early_exit = self.conf.depth_confidence > 0
        pruning = self.conf.width_confidence > 0
        min_points = self.pruning_min_points(device)
        last = self.conf.n_layers - 1
        layer = 0
        for layer in range(self.conf.n_layers):
            if x0.shape[1] == 0 or x1.shape[1] == 0:
                break
            if layer == 0:
                x0 = self._first_self_attention(prepared0, x0, enc0, masked0)
                x1 = self._first_self_attention(prepared1, x1, enc1, masked1)
                x0, x1 = self.transformers[0].cross_attn(x0, x1)
            else:
                x0, x1 = self.transformers[layer](x0, x1, enc0, enc1)
            layers_run0[ind0] += 1
            layers_run1[ind1] += 1
            if layer == last:
                break
            conf0 = conf1 = None
            if early_exit:
                conf0, conf1 = self.token_confidence[layer](x0), self.token_confidence[layer](x1)
                if self.should_stop(conf0, conf1, layer, valid0 + valid1):
                    break
            if pruning and x0.shape[1] > min_points:
                keep = torch.where(self.keep_mask(x0, conf0, layer))[0]
                ind0, x0, enc0 = ind0[keep], x0[:, keep], enc0[..., keep, :]
            if pruning and x1.shape[1] > min_points:
                keep = torch.where(self.keep_mask(x1, conf1, layer))[0]
                ind1, x1, enc1 = ind1[keep], x1[:, keep], enc1[..., keep, :]

        stop = layer + 1
        pruned0, pruned1 = valid0 - len(ind0), valid1 - len(ind1)
        matches0 = torch.full((n0,), -1, dtype=torch.long, device=device)
        matches1 = torch.full((n1,), -1, dtype=torch.long, device=device)
        if x0.shape[1] == 0 or x1.shape[1] == 0:
            empty = torch.zeros((0, 2), dtype=torch.long, device=device)
            return MatchResult(empty, torch.zeros(0, device=device), matches0, matches1, stop, pruned0, pruned1,
                               layers_run0, layers_run1)

        scores = self.log_assignment[layer](x0, x1)
        m0, m1, score0 = mutual_matches(scores.float(), self.conf.filter_threshold)
        sel = torch.where(m0 > -1)[0]
        idx0, idx1 = ind0[sel], ind1[m0[sel]]
        matches0[idx0] = idx1
        matches1[idx1] = idx0
        return MatchResult(torch.stack([idx0, idx1], -1), score0[sel], matches0, matches1, stop, pruned0, pruned1,
                           layers_run0, layers_run1)
