"""Forgets to remove the reduced dimension: returns shape (4, 1) where torch.logsumexp gives (4,)."""

# fails: test-logsumexp
# %% grade_id=logsumexp-answer
import torch


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))
