"""Swaps the signs of the sine terms: rotates by -m*theta. Relative positions and norms are still
fine, but the layout no longer matches the checkpoints' convention."""

# fails: test-rope
# %% grade_id=rope-answer
import torch


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + D/2)`` of ``x`` ``(..., T, D)`` by ``positions * base**(-2i/D)``."""
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"RoPE needs an even head width, got D={d}")
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)
    angles = positions.to(torch.float64).unsqueeze(-1) * theta
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)
