"""Off by one: ``tril(diagonal=1)`` lets every token see the next one, the token it is trained to predict."""

# fails: test-causal-mask, test-mha
# %% grade_id=causal-mask-answer
import torch


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T, T)``: True where query i may attend to key j, i.e. ``j <= i``."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril(diagonal=1)
