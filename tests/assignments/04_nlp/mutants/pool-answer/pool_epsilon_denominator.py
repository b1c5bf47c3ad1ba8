"""Avoids division by zero the 'usual' way, dividing by count + 1e-9: zero rows come out right but every mean is off by a relative 1e-9, visible in float64."""


# fails: test-pool
# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    if hidden.dim() != 3:
        raise ValueError("hidden must be (B, T, D)")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError("mask must be (B, T)")
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    keep = attention_mask.bool().unsqueeze(-1)
    h = hidden.to(acc)
    total = torch.where(keep, h, torch.zeros_like(h)).sum(1)
    count = keep.sum(1).to(acc)
    return (total / (count + 1e-9)).to(hidden.dtype)
