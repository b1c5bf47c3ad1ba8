"""Scaled dot-product attention and multi-head attention.

Follows "Attention Is All You Need" (Vaswani et al., 2017, https://arxiv.org/abs/1706.03762),
section 3.2. :func:`scaled_dot_product_attention` is the teaching path, written out and equal
to ``torch.nn.functional.scaled_dot_product_attention`` on every mask kind;
:class:`MultiHeadAttention` uses the fused kernel by default and equals
``torch.nn.MultiheadAttention`` given the same weights.

Mask conventions (the same as PyTorch's): a boolean mask is True where a query **may** attend;
a float mask is **added** to the scores (0 to keep, ``-inf`` to block). Masks broadcast to
``(B, H, T_q, T_k)``. A query row whose keys are all masked gets an all-zero output (PyTorch's
fused kernels may return NaN there).

Attention at scale (lesson 02, section 10): :func:`online_softmax_attention` is the running-max /
running-sum recurrence of FlashAttention (Dao et al., 2022, https://arxiv.org/abs/2205.14135;
FlashAttention-2, Dao, 2023, https://arxiv.org/abs/2307.08691) over blocks of keys;
:func:`repeat_kv` and :func:`kv_cache_bytes` serve grouped-query attention (Ainslie et al., 2023,
https://arxiv.org/abs/2305.13245); :func:`sliding_window_mask` is the local causal mask of
Longformer (Beltagy et al., 2020) and Mistral 7B (Jiang et al., 2023).
"""

from __future__ import annotations

import math
from typing import Literal, overload

import torch
import torch.nn.functional as F  # noqa: N812 (the conventional alias)
from torch import nn

__all__ = [
    "MultiHeadAttention",
    "causal_mask",
    "kv_cache_bytes",
    "merge_heads",
    "online_softmax_attention",
    "repeat_kv",
    "scaled_dot_product_attention",
    "sliding_window_mask",
    "split_heads",
]


def causal_mask(t_q: int, t_k: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T_q, T_k)`` mask, True where query i may see key j: ``j <= i + (T_k - T_q)``.

    With ``T_k > T_q`` (decoding with a cache of ``T_k - T_q`` earlier tokens) the queries are
    the last ``T_q`` positions: the bottom-right alignment of
    ``torch.nn.attention.bias.causal_lower_right``, which KV-cached decoding needs.
    (``F.scaled_dot_product_attention(is_causal=True)`` aligns top-left instead.)
    """
    t_k = t_q if t_k is None else t_k
    if t_q < 0 or t_k < t_q:
        raise ValueError(f"need 0 <= T_q <= T_k, got T_q={t_q}, T_k={t_k}")
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


@overload
def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    return_weights: Literal[False] = False,
) -> torch.Tensor: ...


@overload
def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    return_weights: Literal[True],
) -> tuple[torch.Tensor, torch.Tensor]: ...


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q kᵀ · scale + mask) v`` written out.

    Args:
        q: ``(..., T_q, D)``; k: ``(..., T_k, D)``; v: ``(..., T_k, D_v)`` (usually ``(B, H, T, D)``).
        attn_mask: boolean (True = attend) or float (added) mask broadcastable to ``(..., T_q, T_k)``.
        dropout_p: dropout on the attention weights (apply only in training).
        is_causal: apply :func:`causal_mask`; combined with ``attn_mask`` if both are given.
        scale: defaults to ``1 / sqrt(D)``.
        return_weights: also return the ``(..., T_q, T_k)`` attention weights (after dropout).

    Returns:
        ``(..., T_q, D_v)`` in the dtype of ``q``; rows with no visible key are zeros.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    t_q, t_k = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T_q, T_k)
    bias = torch.zeros((), dtype=scores.dtype, device=scores.device)
    visible = torch.ones((), dtype=torch.bool, device=scores.device)
    if is_causal:
        visible = visible & causal_mask(t_q, t_k, device=scores.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            visible = visible & attn_mask
        else:
            bias = bias + attn_mask.to(scores.dtype)
            visible = visible & (attn_mask != float("-inf"))
    scores = (scores + bias).masked_fill(~visible, float("-inf"))
    # A row with nothing visible would be softmax(-inf, ..., -inf) = NaN: give it zero weights.
    any_visible = visible.expand_as(scores).any(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(~any_visible, 0.0), dim=-1) * any_visible
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v  # (..., T_q, D_v)
    return (out, weights) if return_weights else out


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(B, T, H*D) -> (B, H, T, D)``."""
    b, t, c = x.shape
    if c % n_heads:
        raise ValueError(f"model width {c} is not divisible by {n_heads} heads")
    return x.view(b, t, n_heads, c // n_heads).transpose(1, 2)  # (B, H, T, D)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, D) -> (B, T, H*D)``, the inverse of :func:`split_heads`."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)  # (B, T, H*D)


class MultiHeadAttention(nn.Module):
    """Self-attention with a fused QKV projection.

    ``qkv.weight`` is ``[W_q; W_k; W_v]`` stacked along the output dimension, the layout of
    ``nn.MultiheadAttention.in_proj_weight``, so weights copy over one to one.
    ``fused=True`` runs ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels
    where available); ``fused=False`` the written-out :func:`scaled_dot_product_attention`.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        causal: bool = False,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_heads, self.causal, self.fused, self.dropout = d_model, n_heads, causal, fused, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        kv_cache: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Attend over ``x`` ``(B, T, C)``; with ``kv_cache`` (keys, values ``(B, H, T_past, D)``)
        the new keys/values are appended first. Returns the output ``(B, T, C)`` and the
        updated ``(keys, values)`` for the next decoding step."""
        q, k, v = self.qkv(x).split(self.d_model, dim=-1)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))  # (B, H, T, D)
        if kv_cache is not None:
            k = torch.cat([kv_cache[0], k], dim=2)  # (B, H, T_past + T, D)
            v = torch.cat([kv_cache[1], v], dim=2)
        dropout_p = self.dropout if self.training else 0.0
        mask, t_q, t_k = attn_mask, q.shape[2], k.shape[2]
        if self.causal and mask is None and t_q in (1, t_k):
            # No mask tensor needed: square causal -> the kernel's own is_causal (its fastest path);
            # one new query after a cache sees every key.
            if self.fused:
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=t_q > 1)  # (B, H, T, D)
            else:
                out = scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=t_q > 1)
            projected_fast: torch.Tensor = self.proj(merge_heads(out))  # (B, T, C)
            return projected_fast, (k, v)
        if self.causal:
            causal = causal_mask(t_q, t_k, device=x.device)
            mask = (
                causal
                if mask is None
                else (mask & causal if mask.dtype == torch.bool else mask.masked_fill(~causal, float("-inf")))
            )
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, H, T, D)
        else:
            out = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        projected: torch.Tensor = self.proj(merge_heads(out))  # (B, T, C)
        return projected, (k, v)


def sliding_window_mask(t: int, window: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T, T)`` mask, True where query i may see key j: ``i - window < j <= i``.

    Causal, and each query sees only the last ``window`` keys, itself included (``window >= T``
    gives :func:`causal_mask`; ``window = 1`` lets a token see only itself). Stacking ``L`` such
    layers lets the last position draw on ``L * (window - 1) + 1`` positions.
    """
    if t < 0 or window < 1:
        raise ValueError(f"need T >= 0 and window >= 1, got T={t}, window={window}")
    distance = torch.arange(t, device=device)[:, None] - torch.arange(t, device=device)  # (T, T): i - j
    return (distance >= 0) & (distance < window)


def online_softmax_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, block_size: int, causal: bool = False
) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(D)) v`` over blocks of ``block_size`` keys, never forming ``(T_q, T_k)``.

    Keeps, per query, the running maximum ``m`` of the scores seen so far, the running sum
    ``l = sum exp(s - m)`` and the unnormalised output ``acc = sum exp(s - m) v``; each new block
    rescales them by ``exp(m_old - m_new)`` (the FlashAttention recurrence). The largest score
    tensor is ``(..., T_q, block_size)``.

    Args:
        q: ``(..., T_q, D)``; k: ``(..., T_k, D)``; v: ``(..., T_k, D_v)``.
        block_size: keys per block, ``>= 1``; need not divide ``T_k``.
        causal: query i sees keys ``j <= i + (T_k - T_q)`` (the alignment of :func:`causal_mask`).

    Returns:
        ``(..., T_q, D_v)`` in the dtype of ``q``. Half-precision inputs accumulate in float32.
        A query with no visible key (``T_k = 0``) gets zeros.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    t_q, t_k = q.shape[-2], k.shape[-2]
    if causal and t_k < t_q:
        raise ValueError(f"causal attention needs T_k >= T_q, got T_q={t_q}, T_k={t_k}")
    acc_dtype = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    q_scaled = q.to(acc_dtype) / math.sqrt(q.shape[-1])
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])  # type: ignore[no-untyped-call]
    m = torch.full((*batch, t_q, 1), float("-inf"), dtype=acc_dtype, device=q.device)  # running max
    l = torch.zeros((*batch, t_q, 1), dtype=acc_dtype, device=q.device)  # noqa: E741 (the paper's name)
    acc = torch.zeros((*batch, t_q, v.shape[-1]), dtype=acc_dtype, device=q.device)
    query_pos = torch.arange(t_q, device=q.device)[:, None] + (t_k - t_q)  # (T_q, 1): bottom-right aligned
    for start in range(0, t_k, block_size):
        k_blk = k[..., start : start + block_size, :].to(acc_dtype)  # (..., Bk, D)
        v_blk = v[..., start : start + block_size, :].to(acc_dtype)  # (..., Bk, D_v)
        scores = q_scaled @ k_blk.transpose(-2, -1)  # (..., T_q, Bk): the only score tensor
        if causal:
            key_pos = torch.arange(start, start + k_blk.shape[-2], device=q.device)  # (Bk,)
            scores = scores.masked_fill(key_pos > query_pos, float("-inf"))
        # Every query sees key 0 (also when causal), so m_new is finite from the first block on.
        m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))  # (..., T_q, 1)
        p = torch.exp(scores - m_new)  # (..., T_q, Bk), masked scores -> 0
        correction = torch.exp(m - m_new)  # rescales what was summed under the old maximum; 0 at first
        l = l * correction + p.sum(dim=-1, keepdim=True)  # noqa: E741
        acc = acc * correction + p @ v_blk  # (..., T_q, D_v)
        m = m_new
    # l >= 1 once a key was seen (the maximum contributes exp(0) = 1); where none was, l = acc = 0.
    return (acc / l.clamp_min(1.0)).to(q.dtype)  # (..., T_q, D_v)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """``(B, H_kv, T, D) -> (B, H_kv * n_rep, T, D)``: each key/value head repeated ``n_rep`` times.

    Query head ``h`` then reads key/value head ``h // n_rep`` (the layout of grouped-query
    attention in LLaMA and of ``F.scaled_dot_product_attention(..., enable_gqa=True)``).
    """
    if x.dim() != 4 or n_rep < 1:
        raise ValueError(f"need x (B, H_kv, T, D) and n_rep >= 1, got shape {tuple(x.shape)}, n_rep={n_rep}")
    b, h_kv, t, d = x.shape
    return x[:, :, None].expand(b, h_kv, n_rep, t, d).reshape(b, h_kv * n_rep, t, d)  # (B, H, T, D)


def kv_cache_bytes(
    *, n_layers: int, n_kv_heads: int, head_dim: int, seq_len: int, batch_size: int = 1, dtype: torch.dtype
) -> int:
    """Bytes of a KV cache: ``2 * layers * kv_heads * head_dim * seq_len * batch * bytes_per_elem``.

    The 2 counts keys and values. Multi-head attention has ``n_kv_heads = n_heads``, multi-query
    attention 1, grouped-query attention anything in between that divides ``n_heads``.
    """
    sizes = {"n_layers": n_layers, "n_kv_heads": n_kv_heads, "head_dim": head_dim, "seq_len": seq_len}
    if min(sizes.values()) < 0 or batch_size < 0:
        raise ValueError(f"sizes must be >= 0, got {sizes} and batch_size={batch_size}")
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * dtype.itemsize
