"""A small tabular MLP that standardizes its own inputs (07_mlops tracks, exports and serves it).

The mean and std are buffers fitted on the training set, so the served and exported model takes
raw features and the ONNX graph carries the preprocessing. Architecture: ``Linear -> GELU ->
Dropout`` blocks then a linear head, as in the MLP baselines of Gorishniy et al., "Revisiting
Deep Learning Models for Tabular Data" (NeurIPS 2021).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import Field
from torch import nn

from mlcraft.config.base import FrozenConfig

__all__ = ["TabularMLP", "TabularMLPConfig", "predict_proba"]


class TabularMLPConfig(FrozenConfig):
    """Shape of a :class:`TabularMLP`."""

    n_features: int = Field(default=8, ge=1, le=100_000)  # input columns (mlcraft.data.tabular has 8)
    n_classes: int = Field(default=3, ge=2, le=100_000)  # output logits (mlcraft.data.tabular has 3)
    hidden: tuple[int, ...] = (64, 64)  # width of each hidden layer
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)  # dropout after each hidden activation


class TabularMLP(nn.Module):
    """Raw features ``[B, F]`` (float32) -> class logits ``[B, C]``, standardizing inside.

    ``mean`` and ``std`` are buffers (saved in the state dict and exported to ONNX); set them
    with :meth:`fit_normalization` before training.
    """

    mean: torch.Tensor  # (F,) training-set mean of each feature
    std: torch.Tensor  # (F,) training-set standard deviation, floored at 1e-6

    def __init__(self, config: TabularMLPConfig | None = None) -> None:
        super().__init__()
        self.config = config or TabularMLPConfig()
        f = self.config.n_features
        self.register_buffer("mean", torch.zeros(f))
        self.register_buffer("std", torch.ones(f))
        layers: list[nn.Module] = []
        width = f
        for hidden in self.config.hidden:
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(self.config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, self.config.n_classes))
        self.net = nn.Sequential(*layers)

    @torch.no_grad()
    def fit_normalization(self, features: np.ndarray | torch.Tensor) -> None:
        """Set ``mean``/``std`` from training features ``[N, F]`` (std floored at 1e-6)."""
        x = torch.as_tensor(features, dtype=torch.float64)
        if x.dim() != 2 or x.shape[1] != self.config.n_features or x.shape[0] < 2:
            raise ValueError(f"expected features [N >= 2, {self.config.n_features}], got {tuple(x.shape)}")
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = (features - self.mean) / self.std  # (B, F)
        logits: torch.Tensor = self.net(z)  # (B, C)
        return logits


def predict_proba(model: nn.Module, features: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Class probabilities ``[B, C]`` (float32) of ``model`` for raw features ``[B, F]``, without autograd."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    with torch.inference_mode():
        return torch.softmax(model(x), dim=-1).numpy()
