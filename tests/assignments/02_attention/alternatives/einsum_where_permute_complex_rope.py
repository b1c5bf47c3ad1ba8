"""Different but correct: einsum for every product, ``torch.where`` masks with ``nan_to_num`` for
rows with no visible key, a causal mask from an index comparison, ``unflatten``/``permute`` heads,
an einsum fused projection split with ``chunk``, complex-number RoPE via ``torch.view_as_complex``
in the half layout, and a decode step written with einsum."""

# %% grade_id=sdpa-answer
import torch


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(D) + mask) v`` over the last two dimensions; rows with no visible key are zeros."""
    scores = torch.einsum("...qd,...kd->...qk", q, k) * q.shape[-1] ** -0.5
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device))
        else:
            scores = scores + mask
    weights = torch.nan_to_num(scores.softmax(dim=-1), nan=0.0)
    return torch.einsum("...qk,...kd->...qd", weights, v)


# %% grade_id=causal-mask-answer
import torch


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T, T)``: True where query i may attend to key j, i.e. ``j <= i``."""
    idx = torch.arange(T, device=device)
    return idx[:, None] >= idx[None, :]


# %% grade_id=split-heads-answer
import torch


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(B, T, C) -> (B, H, T, D)``; head h owns channels ``h*D:(h+1)*D``."""
    d, rest = divmod(x.shape[-1], n_heads)
    if rest:
        raise ValueError(f"{n_heads} heads do not divide the width {x.shape[-1]}")
    return x.unflatten(-1, (n_heads, d)).permute(0, 2, 1, 3)


# %% grade_id=merge-heads-answer
import torch


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, D) -> (B, T, H*D)``, the inverse of ``split_heads``."""
    return x.permute(0, 2, 1, 3).flatten(start_dim=2)


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
    qkv = torch.einsum("btc,oc->bto", x, w_qkv)
    if b_qkv is not None:
        qkv = qkv + b_qkv
    q, k, v = (split_heads(part, n_heads) for part in qkv.chunk(3, dim=-1))
    mask = causal_mask(x.shape[1], device=x.device) if causal else None
    out = torch.einsum("btc,oc->bto", merge_heads(scaled_dot_product_attention(q, k, v, mask=mask)), w_out)
    return out if b_out is None else out + b_out


# %% grade_id=rope-answer
import torch


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + D/2)`` of ``x`` ``(..., T, D)`` by ``positions * base**(-2i/D)``."""
    d = x.shape[-1]
    if d % 2 == 1:
        raise ValueError("apply_rope: the last dimension must be even")
    half = d // 2
    dev64 = torch.device("cpu") if x.device.type == "mps" else x.device  # no float64 on Apple GPUs
    exponents = torch.arange(half, dtype=torch.float64, device=dev64) * 2 / d
    freqs = torch.pow(torch.tensor(base, dtype=torch.float64, device=dev64), -exponents)
    angles = torch.outer(positions.to(dev64, torch.float64), freqs)  # (T, D/2)
    rotor = torch.polar(torch.ones_like(angles), angles).to(x.device)  # e^{i m theta}
    # Channel i is the real part and channel i + D/2 the imaginary part of one complex number.
    z = torch.view_as_complex(torch.stack((x[..., :half], x[..., half:]), dim=-1).contiguous())
    turned = torch.view_as_real(z * rotor.to(z.dtype))  # (..., T, D/2, 2)
    return torch.cat((turned[..., 0], turned[..., 1]), dim=-1)


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
    q, k, v = (split_heads(torch.einsum("btc,oc->bto", x_t, w), n_heads) for w in (w_q, w_k, w_v))
    keys = torch.cat((cache_k, k), dim=-2)
    values = torch.cat((cache_v, v), dim=-2)
    weights = torch.einsum("bhqd,bhkd->bhqk", q, keys).div(q.shape[-1] ** 0.5).softmax(dim=-1)
    return merge_heads(torch.einsum("bhqk,bhkd->bhqd", weights, values)), keys, values
