"""Computes in float32 for accuracy but returns float32 for a bfloat16 input instead of casting back."""

# fails: test-logsumexp
# %% grade_id=logsumexp-answer
import torch


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return (m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))).squeeze(dim)
