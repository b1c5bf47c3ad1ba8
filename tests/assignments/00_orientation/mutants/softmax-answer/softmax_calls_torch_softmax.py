"""Just calls ``torch.softmax``: right values, caught by the hidden forbidden-call check."""

# fails: test-softmax
# %% grade_id=softmax-answer
import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)`` computed without overflow; same shape as ``x``."""
    return torch.softmax(x, dim=dim)
