"""Shifts by the maximum of the whole tensor instead of each slice's maximum: slices far below it underflow to -inf."""

# fails: test-logsumexp
# %% grade_id=logsumexp-answer
import torch


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    m = x.max()
    if not torch.isfinite(m):
        m = torch.zeros_like(m)
    return m + torch.log(torch.exp(x - m).sum(dim=dim))
