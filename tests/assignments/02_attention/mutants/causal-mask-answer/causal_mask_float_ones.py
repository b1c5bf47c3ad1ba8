"""Returns a float mask of ones and zeros: attention adds it to the scores (+1 on the past) instead of blocking the future."""

# fails: test-causal-mask, test-mha
# %% grade_id=causal-mask-answer
import torch


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T, T)``: True where query i may attend to key j, i.e. ``j <= i``."""
    return torch.tril(torch.ones(T, T, device=device))
