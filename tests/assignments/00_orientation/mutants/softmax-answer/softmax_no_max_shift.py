"""Softmax as written on paper: exp(x + 1000) is inf, and inf / inf is NaN."""

# fails: test-softmax
# %% grade_id=softmax-answer
import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)`` computed without overflow; same shape as ``x``."""
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)
