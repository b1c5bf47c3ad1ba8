"""Reads a boolean mask with nn.MultiheadAttention's convention (True = blocked) instead of True = may attend."""

# fails: test-sdpa, test-causal-mask, test-mha
# %% grade_id=sdpa-answer
import math

import torch


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(D) + mask) v`` over the last two dimensions; rows with no visible key are zeros."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(mask, float("-inf"))  # True read as "blocked"
    elif mask is not None:
        scores = scores + mask.to(scores.dtype)
    has_key = (scores != float("-inf")).any(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(~has_key, 0.0), dim=-1) * has_key
    return weights @ v
