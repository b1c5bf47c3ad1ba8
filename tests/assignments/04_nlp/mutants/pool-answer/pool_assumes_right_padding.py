"""Takes the first mask.sum() positions of each row (hidden[b, :length]), i.e. assumes right padding; the statement allows left padding, where this averages padding and drops real tokens."""


# fails: test-pool
# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    if hidden.dim() != 3:
        raise ValueError("hidden must be (B, T, D)")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError("mask must be (B, T)")
    lengths = (attention_mask != 0).sum(dim=1).tolist()
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    rows = []
    for b, n in enumerate(lengths):
        if n == 0:
            rows.append(torch.zeros(hidden.shape[2], dtype=acc, device=hidden.device))
        else:
            rows.append(hidden[b, :n].to(acc).sum(0) / n)
    return torch.stack(rows).to(hidden.dtype) if rows else hidden.new_zeros(0, hidden.shape[2])
