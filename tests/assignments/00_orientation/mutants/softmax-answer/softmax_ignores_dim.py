"""Always normalises over the last dimension, ignoring the ``dim`` argument."""

# fails: test-softmax
# %% grade_id=softmax-answer
import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)`` computed without overflow; same shape as ``x``."""
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)
