"""Positional information for attention: sinusoidal, learned, and rotary (RoPE).

- Sinusoidal: Vaswani et al. (2017), section 3.5: ``PE[p, 2i] = sin(p / 10000^(2i/d))``,
  ``PE[p, 2i+1] = cos(p / 10000^(2i/d))``, added to the token embeddings.
- Learned: one trained vector per position (GPT-2).
- Rotary: Su et al. (2021, https://arxiv.org/abs/2104.09864). Queries and keys are rotated by
  a position-dependent angle, so ``q·k`` depends only on their distance. Dimension ``i`` is
  paired with ``i + D/2`` (the "rotate half" layout of GPT-NeoX and LLaMA in Hugging Face
  transformers); frequencies ``theta_i = base^(-2i/D)``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LearnedPositionalEmbedding", "RotaryEmbedding", "apply_rotary", "rotate_half", "sinusoidal_encoding"]


def sinusoidal_encoding(n_positions: int, d_model: int, base: float = 10_000.0) -> torch.Tensor:
    """``(n_positions, d_model)`` float32 table; ``d_model`` must be even."""
    if d_model % 2 or d_model <= 0 or n_positions < 0:
        raise ValueError(f"need n_positions >= 0 and an even d_model > 0, got {n_positions}, {d_model}")
    position = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    inv_freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (D/2,)
    angles = position * inv_freq  # (P, D/2)
    table = torch.empty(n_positions, d_model, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = angles.sin(), angles.cos()
    return table.float()


class LearnedPositionalEmbedding(nn.Module):
    """A trained ``(max_positions, d_model)`` table; ``forward(positions)`` looks rows up."""

    def __init__(self, max_positions: int, d_model: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.table = nn.Embedding(max_positions, d_model)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if positions.numel() and int(positions.max()) >= self.max_positions:
            raise ValueError(f"position {int(positions.max())} >= max_positions {self.max_positions}")
        embedded: torch.Tensor = self.table(positions)
        return embedded


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``(..., T, D)`` by the angles whose ``cos``/``sin`` are ``(T, D)``."""
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding(nn.Module):
    """Cos/sin tables for RoPE, computed in float64 and cached up to ``max_positions``."""

    inv_freq: torch.Tensor

    def __init__(self, head_dim: int, max_positions: int = 2048, base: float = 10_000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings, got {head_dim}")
        self.head_dim, self.max_positions = head_dim, max_positions
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (D/2,)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos, sin`` of shape ``(T, D)`` for integer ``positions`` ``(T,)``."""
        if positions.numel() and int(positions.max()) >= self.max_positions:
            raise ValueError(f"position {int(positions.max())} >= max_positions {self.max_positions}")
        angles = positions.to(torch.float64).unsqueeze(-1) * self.inv_freq  # (T, D/2)
        angles = torch.cat((angles, angles), dim=-1)  # (T, D): dimension i and i + D/2 share an angle
        return angles.cos().to(dtype), angles.sin().to(dtype)
