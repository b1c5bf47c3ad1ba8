"""Always accumulates in float32 (reading 'sums are taken in float32'), then casts back: float64 inputs lose precision, though the statement says float64 stays float64."""


# fails: test-pool
# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    if hidden.dim() != 3:
        raise ValueError("hidden must be (B, T, D)")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError("mask must be (B, T)")
    keep = attention_mask.bool().unsqueeze(-1)
    h = hidden.to(torch.float32)
    total = torch.where(keep, h, torch.zeros_like(h)).sum(1)
    count = keep.sum(1).clamp(min=1).to(torch.float32)
    return (total / count).to(hidden.dtype)
