"""Splits with ``view(B, H, T, D)`` and no transpose (and merges back the same way): the right shape and a
clean round trip, but each "head" holds pieces of several tokens."""

# fails: test-split-merge-heads, test-mha
# %% grade_id=split-heads-answer
import torch


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(B, T, C) -> (B, H, T, D)``; head h owns channels ``h*D:(h+1)*D``."""
    b, t, c = x.shape
    if c % n_heads:
        raise ValueError(f"the width {c} is not divisible by {n_heads} heads")
    return x.view(b, n_heads, t, c // n_heads)


# %% grade_id=merge-heads-answer
import torch


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, D) -> (B, T, H*D)``, the inverse of ``split_heads``."""
    b, h, t, d = x.shape
    return x.view(b, t, h * d)
