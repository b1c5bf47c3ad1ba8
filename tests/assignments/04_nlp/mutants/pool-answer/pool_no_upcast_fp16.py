"""Masks with torch.where and sums in hidden's own dtype: fine in float32, but a float16 sum of 4,096 values of 30 overflows to inf (the statement asks for float32 accumulation)."""


# fails: test-pool
# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    if hidden.dim() != 3:
        raise ValueError("hidden must be (B, T, D)")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError("mask must be (B, T)")
    keep = attention_mask.bool().unsqueeze(-1)
    total = torch.where(keep, hidden, torch.zeros_like(hidden)).sum(1)
    count = keep.sum(1).clamp(min=1).to(hidden.dtype)
    return total / count
