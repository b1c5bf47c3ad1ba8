"""Different but correct: attention with broadcast products summed over an axis instead of
``matmul``, blocked keys filled with ``-inf`` and fully blocked rows zeroed by a visibility factor
after ``torch.softmax``, a causal mask as the cumulative sum of the identity, heads cut with
``unfold`` and merged with ``movedim``/``reshape``, one ``matmul`` for the fused projection split
with ``split``, RoPE as the explicit half-pair formula on an upcast copy, and a decode step that
concatenates with ``torch.concat``."""

# %% grade_id=sdpa-answer
import torch


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(D) + mask) v`` over the last two dimensions; rows with no visible key are zeros."""
    k_scaled = k / q.shape[-1] ** 0.5
    scores = (q.unsqueeze(-2) * k_scaled.unsqueeze(-3)).sum(-1)  # (..., T_q, T_k)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = torch.masked_fill(scores, torch.logical_not(mask), float("-inf"))
        else:
            scores = scores + mask
    visible = (scores != float("-inf")).any(dim=-1, keepdim=True)  # (..., T_q, 1)
    weights = torch.softmax(torch.where(visible, scores, torch.zeros_like(scores)), dim=-1) * visible
    return (weights.unsqueeze(-1) * v.unsqueeze(-3)).sum(-2)  # (..., T_q, D_v)


# %% grade_id=causal-mask-answer
import torch


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T, T)``: True where query i may attend to key j, i.e. ``j <= i``."""
    # Row i of the running sum of the identity counts the ones in column j among rows 0..i: 1 iff j <= i.
    return torch.eye(T, dtype=torch.int64, device=device).cumsum(dim=0).bool()


# %% grade_id=split-heads-answer
import torch


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(B, T, C) -> (B, H, T, D)``; head h owns channels ``h*D:(h+1)*D``."""
    c = x.size(2)
    if c % n_heads != 0:
        raise ValueError(f"cannot split {c} channels into {n_heads} heads")
    d = c // n_heads
    return x.unfold(2, d, d).movedim(2, 1)  # (B, T, H, D) windows of D channels -> (B, H, T, D)


# %% grade_id=merge-heads-answer
import torch


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, D) -> (B, T, H*D)``, the inverse of ``split_heads``."""
    b, h, t, d = x.shape
    return x.movedim(1, 2).reshape(b, t, h * d)


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
    c = x.size(-1)
    qkv = torch.matmul(x, w_qkv.mT)
    if b_qkv is not None:
        qkv = qkv + b_qkv
    q, k, v = (split_heads(part, n_heads) for part in qkv.split(c, dim=-1))
    attended = scaled_dot_product_attention(q, k, v, causal_mask(x.size(1), x.device) if causal else None)
    out = torch.matmul(merge_heads(attended), w_out.mT)
    if b_out is not None:
        out = out + b_out
    return out


# %% grade_id=rope-answer
import torch


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + D/2)`` of ``x`` ``(..., T, D)`` by ``positions * base**(-2i/D)``."""
    d = x.shape[-1]
    if d % 2 == 1:
        raise ValueError(f"apply_rope: D = {d} is odd")
    half = d // 2
    wide = torch.float32 if x.device.type == "mps" else torch.float64
    dev64 = torch.device("cpu") if x.device.type == "mps" else x.device  # no float64 on Apple GPUs
    exponent = torch.arange(0, d, 2, dtype=torch.float64, device=dev64) / d  # 2i / D
    theta = torch.tensor(float(base), dtype=torch.float64, device=dev64) ** -exponent
    angle = torch.outer(positions.to(dev64, torch.float64), theta)  # (T, D/2)
    cos, sin = (t.to(device=x.device, dtype=wide) for t in (angle.cos(), angle.sin()))
    a, b = x[..., :half].to(wide), x[..., half:].to(wide)
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1).to(x.dtype)


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
    q_t, k_t, v_t = (split_heads(torch.matmul(x_t, w.t()), n_heads) for w in (w_q, w_k, w_v))
    new_k = torch.concat([cache_k, k_t], dim=2)
    new_v = torch.concat([cache_v, v_t], dim=2)
    return merge_heads(scaled_dot_product_attention(q_t, new_k, new_v)), new_k, new_v
