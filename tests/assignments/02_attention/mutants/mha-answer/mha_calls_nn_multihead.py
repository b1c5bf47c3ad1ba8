"""Builds an nn.MultiheadAttention, copies the weights in and calls it: right values, caught by the
hidden forbidden-call check."""

# fails: test-mha
# %% grade_id=mha-answer
import torch
from torch import nn


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
    c, t = x.shape[-1], x.shape[1]
    layer = nn.MultiheadAttention(c, n_heads, bias=b_qkv is not None, batch_first=True, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        layer.in_proj_weight.copy_(w_qkv)
        layer.out_proj.weight.copy_(w_out)
        if b_qkv is not None:
            layer.in_proj_bias.copy_(b_qkv)
            layer.out_proj.bias.copy_(b_out)
        blocked = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1) if causal else None
        return layer.eval()(x, x, x, attn_mask=blocked, need_weights=False)[0]
