"""Computes the angles in x's dtype: fine in float64, but in float32 far positions lose about 1e-4 radians."""

# fails: test-rope
# %% grade_id=rope-answer
import torch


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + D/2)`` of ``x`` ``(..., T, D)`` by ``positions * base**(-2i/D)``."""
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"RoPE needs an even head width, got D={d}")
    theta = base ** (-torch.arange(0, d, 2, dtype=x.dtype, device=x.device) / d)
    angles = positions.to(x.dtype).unsqueeze(-1) * theta
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat((x1 * angles.cos() - x2 * angles.sin(), x1 * angles.sin() + x2 * angles.cos()), dim=-1)
