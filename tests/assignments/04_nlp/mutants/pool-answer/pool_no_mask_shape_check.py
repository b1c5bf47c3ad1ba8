"""Checks only that hidden is 3-D; a mask of the wrong shape either broadcasts silently ((1, T) or (B, T, 1)) or dies with a RuntimeError, never the ValueError the statement asks for."""


# fails: test-pool
# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    if hidden.dim() != 3:
        raise ValueError("hidden must be (B, T, D)")
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    keep = (attention_mask != 0).unsqueeze(-1)
    h = hidden.to(acc)
    total = torch.where(keep, h, torch.zeros_like(h)).sum(1)
    count = keep.to(acc).sum(1).clamp(min=1)
    return (total / count).to(hidden.dtype)
