"""Forgets the 1/sqrt(D) scale: the softmax is too sharp, and wider heads make it sharper still."""

# fails: test-sdpa, test-mha, test-decode-step
# %% grade_id=sdpa-answer
import torch


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(D) + mask) v`` over the last two dimensions; rows with no visible key are zeros."""
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.to(scores.dtype)
    has_key = (scores != float("-inf")).any(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(~has_key, 0.0), dim=-1) * has_key
    return weights @ v
