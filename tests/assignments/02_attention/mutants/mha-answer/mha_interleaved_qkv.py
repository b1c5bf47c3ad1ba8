"""Reads the fused projection in GPT-NeoX's per-head layout (each head's q, k, v side by side)
instead of nn.MultiheadAttention's stacked [W_q; W_k; W_v] blocks."""

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
    b, t, c = x.shape
    qkv = F.linear(x, w_qkv, b_qkv).view(b, t, n_heads, 3 * (c // n_heads)).transpose(1, 2)  # (B, H, T, 3D)
    q, k, v = qkv.chunk(3, dim=-1)
    mask = causal_mask(t, device=x.device) if causal else None
    out = merge_heads(scaled_dot_product_attention(q, k, v, mask))
    return F.linear(out, w_out, b_out)
