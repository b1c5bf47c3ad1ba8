"""Subtracts the max in place, overwriting the caller's tensor."""

# fails: test-softmax
# %% grade_id=softmax-answer
import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)`` computed without overflow; same shape as ``x``."""
    x -= x.amax(dim=dim, keepdim=True)
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)
