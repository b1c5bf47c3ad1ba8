"""Passes ``~causal_mask(T)`` to its own attention, as if it were nn.MultiheadAttention's
True = blocked mask: every token attends to the future instead of the past."""

# fails: test-mha
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
    qkv = F.linear(x, w_qkv, b_qkv)
    q, k, v = (split_heads(t, n_heads) for t in qkv.split(c, dim=-1))
    mask = ~causal_mask(x.shape[1], device=x.device) if causal else None
    out = merge_heads(scaled_dot_product_attention(q, k, v, mask))
    return F.linear(out, w_out, b_out)
