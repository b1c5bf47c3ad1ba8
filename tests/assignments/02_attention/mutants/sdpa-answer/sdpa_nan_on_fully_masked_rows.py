"""Masks with -inf and takes the softmax, with no guard: a query that may see no key gets 0/0 = NaN."""

# fails: test-sdpa
# %% grade_id=sdpa-answer
import math

import torch


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(D) + mask) v`` over the last two dimensions; rows with no visible key are zeros."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.to(scores.dtype)
    return torch.softmax(scores, dim=-1) @ v
