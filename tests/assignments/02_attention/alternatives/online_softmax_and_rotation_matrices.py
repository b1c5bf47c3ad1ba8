"""Different but correct: attention with an online (flash-attention style) softmax that visits the
keys one at a time with a running maximum and denominator, a causal mask built from a nested list,
heads gathered with an index tensor and merged by slice assignment in a loop, the fused projection
done with ``F.linear`` and unflattened into ``(3, C)``, RoPE as a batch of 2x2 rotation matrices
applied with ``matmul`` in float64, and a decode step that grows the caches with ``F.pad``."""

# %% grade_id=sdpa-answer
import math

import torch


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(D) + mask) v`` over the last two dimensions; rows with no visible key are zeros."""
    work = torch.promote_types(q.dtype, torch.float32)
    qw, kw, vw = q.to(work), k.to(work), v.to(work)
    t_q, t_k = q.shape[-2], k.shape[-2]
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if mask is not None:
        lead = torch.broadcast_shapes(lead, mask.shape[:-2])
        mask = torch.broadcast_to(mask, (*lead, t_q, t_k))
    scale = 1.0 / math.sqrt(q.shape[-1])
    neg_inf = float("-inf")
    run_max = torch.full((*lead, t_q), neg_inf, dtype=work, device=q.device)
    denom = torch.zeros((*lead, t_q), dtype=work, device=q.device)
    acc = torch.zeros((*lead, t_q, v.shape[-1]), dtype=work, device=q.device)
    for j in range(t_k):
        s = (qw * kw[..., j : j + 1, :]).sum(-1) * scale  # (..., T_q): every query's score for key j
        if mask is not None:
            col = mask[..., j]
            s = s.masked_fill(~col, neg_inf) if col.dtype == torch.bool else s + col.to(work)
        new_max = torch.maximum(run_max, s)
        safe = torch.where(torch.isneginf(new_max), torch.zeros_like(new_max), new_max)
        keep = torch.exp(run_max - safe)  # rescales what was accumulated under the old maximum
        p = torch.exp(s - safe)
        denom = denom * keep + p
        acc = acc * keep[..., None] + p[..., None] * vw[..., j : j + 1, :]
        run_max = new_max
    seen = denom > 0
    out = torch.where(seen[..., None], acc / torch.where(seen, denom, torch.ones_like(denom))[..., None], 0.0)
    return out.to(q.dtype)


# %% grade_id=causal-mask-answer
import torch


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T, T)``: True where query i may attend to key j, i.e. ``j <= i``."""
    rows = [[j <= i for j in range(T)] for i in range(T)]
    return torch.tensor(rows, dtype=torch.bool, device=device).reshape(T, T)


# %% grade_id=split-heads-answer
import torch


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(B, T, C) -> (B, H, T, D)``; head h owns channels ``h*D:(h+1)*D``."""
    c = x.shape[-1]
    if c % n_heads:
        raise ValueError(f"split_heads: C = {c} is not a multiple of n_heads = {n_heads}")
    index = torch.arange(c, device=x.device).reshape(n_heads, c // n_heads)  # index[h, d] = h*D + d
    return x[..., index].transpose(1, 2)  # (B, T, H, D) -> (B, H, T, D)


# %% grade_id=merge-heads-answer
import torch


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, D) -> (B, T, H*D)``, the inverse of ``split_heads``."""
    b, h, t, d = x.shape
    out = x.new_empty(b, t, h * d)
    for head in range(h):
        out[:, :, head * d : (head + 1) * d] = x[:, head]
    return out


# %% grade_id=mha-answer
import torch
import torch.nn.functional as F  # noqa: N812


def multi_head_self_attention(
    x: torch.Tensor,
    w_qkv: torch.Tensor,
    b_qkv: torch.Tensor | None,
    w_out: torch.Tensor,
    b_out: torch.Tensor | None,
    n_heads: int,
    causal: bool = False,
) -> torch.Tensor:
    """Self-attention over ``x`` ``(B, T, C)`` with ``nn.MultiheadAttention``'s fused ``[W_q; W_k; W_v]`` layout."""
    c = x.shape[-1]
    q, k, v = F.linear(x, w_qkv, b_qkv).unflatten(-1, (3, c)).unbind(dim=-2)
    mask = causal_mask(x.shape[-2], device=x.device) if causal else None
    heads = scaled_dot_product_attention(
        split_heads(q, n_heads), split_heads(k, n_heads), split_heads(v, n_heads), mask=mask
    )
    return F.linear(merge_heads(heads), w_out, b_out)


# %% grade_id=rope-answer
import torch


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + D/2)`` of ``x`` ``(..., T, D)`` by ``positions * base**(-2i/D)``."""
    d = x.shape[-1]
    if d % 2 != 0:
        raise ValueError(f"apply_rope needs an even D, got {d}")
    half = d // 2
    wide = torch.float32 if x.device.type == "mps" else torch.float64
    dev64 = torch.device("cpu") if x.device.type == "mps" else x.device  # no float64 on Apple GPUs
    i = torch.arange(half, dtype=torch.float64, device=dev64)
    theta = base ** (-2.0 * i / d)
    angle = positions.to(dev64, torch.float64)[:, None] * theta  # (T, D/2)
    cos, sin = angle.cos(), angle.sin()
    rot = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)  # (T, D/2, 2, 2)
    pairs = torch.stack((x[..., :half], x[..., half:]), dim=-1).to(wide)  # (..., T, D/2, 2): (a, b)
    turned = (rot.to(device=x.device, dtype=wide) @ pairs[..., None])[..., 0]  # (..., T, D/2, 2)
    return torch.cat((turned[..., 0], turned[..., 1]), dim=-1).to(x.dtype)


# %% grade_id=decode-step-answer
import torch
import torch.nn.functional as F  # noqa: N812


def decode_step(
    x_t: torch.Tensor,
    cache_k: torch.Tensor,
    cache_v: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    n_heads: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Attend from the new token ``x_t`` ``(B, 1, C)`` over the cache plus itself."""
    new_k = F.pad(cache_k, (0, 0, 0, 1))  # a new tensor with one empty slot at the end of time
    new_v = F.pad(cache_v, (0, 0, 0, 1))
    new_k[:, :, -1:] = split_heads(F.linear(x_t, w_k), n_heads)
    new_v[:, :, -1:] = split_heads(F.linear(x_t, w_v), n_heads)
    q = split_heads(F.linear(x_t, w_q), n_heads)
    return merge_heads(scaled_dot_product_attention(q, new_k, new_v)), new_k, new_v
