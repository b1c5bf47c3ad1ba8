"""An MLP autoencoder that scores tabular rows by how badly it reconstructs them.

Trained on normal rows only, the network learns their structure through a narrow bottleneck;
a row that does not follow that structure is reconstructed poorly, so its reconstruction error
is an anomaly score. The approach of Hawkins et al. (2002), "Outlier Detection Using Replicator
Neural Networks" and Sakurada & Yairi (2014), "Anomaly Detection Using Autoencoders with
Nonlinear Dimensionality Reduction"; the architecture is Goodfellow et al., *Deep Learning*
(2016), chapter 14 (an undercomplete autoencoder).

Like :class:`mlcraft.models.tabular.TabularMLP`, the model standardizes its own inputs with
buffers fitted on the training rows, and the error is measured in those standardized units, so
every feature counts on the same scale whatever its raw units.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from mlcraft.config.base import FrozenConfig

__all__ = ["TabularAutoencoder", "TabularAutoencoderConfig"]


class TabularAutoencoderConfig(FrozenConfig):
    """Shape of a :class:`TabularAutoencoder`: ``F -> hidden... -> latent -> reversed(hidden)... -> F``."""

    n_features: int = Field(default=8, ge=1, le=100_000)  # input columns
    hidden: tuple[int, ...] = (32,)  # widths between the input and the bottleneck (mirrored in the decoder)
    latent: int = Field(default=2, ge=1)  # bottleneck width: narrower than the data's dimension
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)  # after each hidden activation, in training only

    @model_validator(mode="after")
    def _check_widths(self) -> TabularAutoencoderConfig:
        if any(width < 1 for width in self.hidden):
            raise ValueError(f"every hidden width must be >= 1, got hidden={self.hidden}")
        if self.latent >= self.n_features:
            raise ValueError(
                f"latent ({self.latent}) must be smaller than n_features ({self.n_features}), "
                "or the network can learn the identity and reconstruct anomalies too"
            )
        return self


def _mlp(widths: list[int], dropout: float) -> nn.Sequential:
    """``Linear -> ReLU -> Dropout`` between consecutive widths, with a plain ``Linear`` last."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(widths) - 2:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class TabularAutoencoder(nn.Module):
    """Raw features ``(B, F)`` -> reconstruction ``(B, F)`` in raw units, through a ``latent`` bottleneck.

    Set ``mean``/``std`` with :meth:`fit_normalization` on the training rows before training.
    Train by minimising ``reconstruction_error(x).mean()`` on normal rows; score new rows with
    :meth:`reconstruction_error` (higher = more anomalous).
    """

    mean: torch.Tensor  # (F,) training-set mean of each feature
    std: torch.Tensor  # (F,) training-set standard deviation, floored at 1e-6

    def __init__(self, config: TabularAutoencoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or TabularAutoencoderConfig()
        self.register_buffer("mean", torch.zeros(config.n_features))
        self.register_buffer("std", torch.ones(config.n_features))
        widths = [config.n_features, *config.hidden, config.latent]
        self.encoder = _mlp(widths, config.dropout)
        self.decoder = _mlp(widths[::-1], config.dropout)

    @torch.no_grad()
    def fit_normalization(self, features: np.ndarray | torch.Tensor) -> None:
        """Set ``mean``/``std`` from training features ``(N, F)``, N >= 2 (std floored at 1e-6), in float64."""
        x = torch.as_tensor(features, dtype=torch.float64)
        if x.dim() != 2 or x.shape[1] != self.config.n_features or x.shape[0] < 2:
            raise ValueError(f"expected features (N >= 2, {self.config.n_features}), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"features have {int((~torch.isfinite(x)).sum())} non-finite values")
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))

    def _standardize(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.config.n_features:
            raise ValueError(f"x must have shape (B, {self.config.n_features}), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"x must have a floating dtype, got {x.dtype}")
        return (x - self.mean) / self.std  # (B, F)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(B, latent)`` of raw features ``x`` ``(B, F)``."""
        code: torch.Tensor = self.encoder(self._standardize(x))
        return code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``(B, F)`` of ``x`` ``(B, F)``, in the raw units of ``x``."""
        standardized: torch.Tensor = self.decoder(self.encode(x))  # (B, F)
        return standardized * self.std + self.mean

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score per row ``(B,)``: mean over features of the squared error in standardized
        units, ``mean_j ((x_j - mu_j) / s_j - x̂_j)^2`` with ``x̂`` the decoder's standardized output.
        Differentiable (use it as the training loss); wrap in ``torch.no_grad()`` to score."""
        z = self._standardize(x)  # (B, F)
        reconstructed: torch.Tensor = self.decoder(self.encoder(z))  # (B, F)
        return (z - reconstructed).square().mean(dim=-1)
