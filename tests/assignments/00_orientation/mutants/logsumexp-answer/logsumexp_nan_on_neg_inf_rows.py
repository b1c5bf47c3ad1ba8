"""Subtracts the max without guarding a max of -inf: a row of only -inf gives -inf - (-inf) = NaN."""

# fails: test-logsumexp
# %% grade_id=logsumexp-answer
import torch


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    m = x.amax(dim=dim, keepdim=True)
    return (m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))).squeeze(dim)
