"""Uses theta_i = base**(-i/D) instead of base**(-2i/D): the frequencies decay half as fast."""

# fails: test-rope
# %% grade_id=rope-answer
import torch


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + D/2)`` of ``x`` ``(..., T, D)`` by ``positions * base**(-2i/D)``."""
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"RoPE needs an even head width, got D={d}")
    theta = base ** (-torch.arange(d // 2, dtype=torch.float64, device=x.device) / d)
    angles = positions.to(torch.float64).unsqueeze(-1) * theta
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
