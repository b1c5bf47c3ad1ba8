"""Log-sum-exp without subtracting the max: overflows to inf for large inputs, underflows to -inf for small ones."""

# fails: test-logsumexp
# %% grade_id=logsumexp-answer
import torch


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    return torch.log(torch.exp(x).sum(dim=dim))
