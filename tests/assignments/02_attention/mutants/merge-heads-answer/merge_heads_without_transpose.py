"""Merges with ``reshape(B, T, H*D)`` and no transpose: the right shape, the channels of different tokens mixed up."""

# fails: test-split-merge-heads, test-mha
# %% grade_id=merge-heads-answer
import torch


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, D) -> (B, T, H*D)``, the inverse of ``split_heads``."""
    b, h, t, d = x.shape
    return x.contiguous().reshape(b, t, h * d)
