"""Takes the softmax over the queries (dim=-2) instead of the keys: each key's weights sum to 1, not each query's."""

# fails: test-sdpa, test-causal-mask, test-mha, test-decode-step
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
    weights = torch.nan_to_num(torch.softmax(scores, dim=-2), nan=0.0)
    return weights @ v
