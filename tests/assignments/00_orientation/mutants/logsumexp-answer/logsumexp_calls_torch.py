"""Calls the library through the tensor method ``x.logsumexp``: right values, but not written by hand."""

# fails: test-logsumexp
# %% grade_id=logsumexp-answer
import torch


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    return x.logsumexp(dim)
