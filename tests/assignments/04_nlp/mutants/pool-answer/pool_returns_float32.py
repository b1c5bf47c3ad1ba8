"""Upcasts to float32 for the sum as asked but forgets to cast back: float16/bfloat16 inputs get a float32 result and float64 inputs are silently downcast."""


# fails: test-pool
# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    if hidden.dim() != 3:
        raise ValueError("hidden must be (B, T, D)")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError("mask must be (B, T)")
    keep = attention_mask.bool().unsqueeze(-1)
    h = hidden.float()
    total = torch.where(keep, h, torch.zeros_like(h)).sum(1)
    count = keep.sum(1).clamp(min=1).float()
    return total / count
