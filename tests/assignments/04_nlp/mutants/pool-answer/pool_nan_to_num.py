"""Multiplies by the mask and cleans up with torch.nan_to_num: padded NaN/inf vanish, but so do NaN/inf at REAL positions (inf becomes a huge finite number), changing the mean of real tokens."""


# fails: test-pool
# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    if hidden.dim() != 3:
        raise ValueError("hidden must be (B, T, D)")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError("mask must be (B, T)")
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    m = (attention_mask != 0).to(acc).unsqueeze(-1)
    total = torch.nan_to_num(hidden.to(acc) * m, nan=0.0).sum(1)
    return (total / m.sum(1).clamp(min=1)).to(hidden.dtype)
