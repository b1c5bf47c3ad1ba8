"""Special-cases empty rows with a data-dependent Python `if` (`if (count == 0).any():`), which needs real values and fails on the `meta` device the statement says must work."""


# fails: test-pool
# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    if hidden.dim() != 3:
        raise ValueError("hidden must be (B, T, D)")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError("mask must be (B, T)")
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    keep = (attention_mask != 0).unsqueeze(-1)
    h = hidden.to(acc)
    total = torch.where(keep, h, torch.zeros_like(h)).sum(1)
    count = keep.to(acc).sum(1)
    if (count == 0).any():
        count = torch.where(count == 0, torch.ones_like(count), count)
    return (total / count).to(hidden.dtype)
