"""Merges with ``transpose(1, 2).view(...)``: ``view`` cannot flatten the transposed (non-contiguous) tensor and raises."""

# fails: test-split-merge-heads, test-mha
# %% grade_id=merge-heads-answer
import torch


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, D) -> (B, T, H*D)``, the inverse of ``split_heads``."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).view(b, t, h * d)
