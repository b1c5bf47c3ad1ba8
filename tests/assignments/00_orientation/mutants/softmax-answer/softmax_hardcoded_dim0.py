"""Normalises over dim 0 whatever ``dim`` is: columns instead of rows sum to 1."""

# fails: test-softmax
# %% grade_id=softmax-answer
import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)`` computed without overflow; same shape as ``x``."""
    e = torch.exp(x - x.amax(dim=0, keepdim=True))
    return e / e.sum(dim=0, keepdim=True)
