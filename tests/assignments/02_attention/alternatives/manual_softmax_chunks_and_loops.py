"""Different but correct: a hand-written stable softmax with a clamped denominator, a causal mask
from ``triu``, heads by ``chunk``/``stack`` and ``unbind``/``cat``, separate per-head attention in
a loop over heads, RoPE with cos/sin tables and a rotate-half helper (the Hugging Face way), and a
decode step that copies into a pre-allocated cache."""

# %% grade_id=sdpa-answer
import math

import torch


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(D) + mask) v`` over the last two dimensions; rows with no visible key are zeros."""
    scores = torch.matmul(q / math.sqrt(q.size(-1)), k.mT)
    if mask is not None:
        bias = (
            torch.zeros_like(mask, dtype=scores.dtype).masked_fill_(~mask, -math.inf)
            if mask.dtype == torch.bool
            else mask
        )
        scores = scores + bias
    top = scores.max(dim=-1, keepdim=True).values
    top = torch.where(top == -math.inf, torch.zeros_like(top), top)
    e = torch.exp(scores - top)
    weights = e / e.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)
    return torch.matmul(weights, v)


# %% grade_id=causal-mask-answer
import torch


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T, T)``: True where query i may attend to key j, i.e. ``j <= i``."""
    return torch.ones((T, T), device=device).triu(diagonal=1) == 0


# %% grade_id=split-heads-answer
import torch


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(B, T, C) -> (B, H, T, D)``; head h owns channels ``h*D:(h+1)*D``."""
    if x.shape[-1] % n_heads != 0:
        raise ValueError("n_heads must divide the channel count")
    return torch.stack(x.chunk(n_heads, dim=-1), dim=1)


# %% grade_id=merge-heads-answer
import torch


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, D) -> (B, T, H*D)``, the inverse of ``split_heads``."""
    return torch.cat(x.unbind(dim=1), dim=-1)


# %% grade_id=mha-answer
import torch


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
    w_q, w_k, w_v = w_qkv[:c], w_qkv[c : 2 * c], w_qkv[2 * c :]
    b_q, b_k, b_v = (None, None, None) if b_qkv is None else (b_qkv[:c], b_qkv[c : 2 * c], b_qkv[2 * c :])

    def project(w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        y = x @ w.T
        return y if b is None else y + b

    q, k, v = (
        split_heads(project(w_q, b_q), n_heads),
        split_heads(project(w_k, b_k), n_heads),
        split_heads(project(w_v, b_v), n_heads),
    )
    mask = causal_mask(x.shape[1], device=x.device) if causal else None
    heads = [scaled_dot_product_attention(q[:, h], k[:, h], v[:, h], mask) for h in range(n_heads)]
    out = torch.stack(heads, dim=1)  # (B, H, T, D)
    y = merge_heads(out) @ w_out.T
    return y if b_out is None else y + b_out


# %% grade_id=rope-answer
import torch


def _rotate_half(t: torch.Tensor) -> torch.Tensor:
    a, b = t.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + D/2)`` of ``x`` ``(..., T, D)`` by ``positions * base**(-2i/D)``."""
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"odd head width {d}")
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, device=x.device).double() / d))
    emb = positions.double()[:, None] * inv_freq[None, :]
    emb = torch.cat((emb, emb), dim=-1)  # (T, D)
    return x * emb.cos().to(x.dtype) + _rotate_half(x) * emb.sin().to(x.dtype)


# %% grade_id=decode-step-answer
import torch


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
    b, h, t_past, d = cache_k.shape
    new_k = cache_k.new_empty(b, h, t_past + 1, d)
    new_v = cache_v.new_empty(b, h, t_past + 1, d)
    new_k[:, :, :t_past] = cache_k
    new_v[:, :, :t_past] = cache_v
    new_k[:, :, t_past:] = split_heads(x_t @ w_k.T, n_heads)
    new_v[:, :, t_past:] = split_heads(x_t @ w_v.T, n_heads)
    q = split_heads(x_t @ w_q.T, n_heads)
    return merge_heads(scaled_dot_product_attention(q, new_k, new_v)), new_k, new_v
