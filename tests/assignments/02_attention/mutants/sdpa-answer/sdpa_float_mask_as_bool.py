"""Turns every mask into a boolean one with ``mask.bool()``: a float mask's 0 (keep) becomes False
(blocked), and its -inf and other values become True."""

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
        scores = scores.masked_fill(~mask.bool(), float("-inf"))
    has_key = (scores != float("-inf")).any(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(~has_key, 0.0), dim=-1) * has_key
    return weights @ v
