"""Multiplies by the mask: NaN or inf at padding gives NaN (0 * NaN)."""

# fails: test-pool
# %% grade_id=pool-answer

import torch


def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, D) over the real tokens of ``attention_mask`` (B, T): (B, D)."""
    if hidden.dim() != 3 or tuple(attention_mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"expected hidden (B, T, D) and attention_mask (B, T), got {tuple(hidden.shape)} and {tuple(attention_mask.shape)}"
        )
    accumulate = torch.promote_types(hidden.dtype, torch.float32)
    real = attention_mask.to(torch.bool).unsqueeze(-1)  # (B, T, 1)
    summed = (hidden.to(accumulate) * real).sum(dim=1)  # (B, D)
    counts = real.sum(dim=1).to(accumulate).clamp(min=1)  # (B, 1)
    return (summed / counts).to(hidden.dtype)
