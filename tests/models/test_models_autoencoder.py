"""Tests for mlcraft.models.autoencoder: shapes, the per-row error against a float64 numpy
reference, and that a trained model scores planted anomalies above normal rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from pydantic import ValidationError

from mlcraft.classroom.testing import assert_close
from mlcraft.models.autoencoder import TabularAutoencoder, TabularAutoencoderConfig

pytestmark = pytest.mark.usefixtures("isolate_torch")

N_FEATURES = 8


def _model(**overrides: Any) -> TabularAutoencoder:
    fields: dict[str, Any] = {"n_features": N_FEATURES, "hidden": (16, 8), "latent": 3}
    torch.manual_seed(0)
    return TabularAutoencoder(TabularAutoencoderConfig(**(fields | overrides)))


def _table(n: int, gen: torch.Generator, mix: torch.Tensor) -> torch.Tensor:
    """Rows on a curved 2-D surface in 8-D, plus a little noise, in very different units per column."""
    factors = torch.randn(n, 2, generator=gen)
    scale = torch.tensor([1.0, 10.0, 100.0, 0.1, 1.0, 5.0, 1.0, 2.0])
    return (torch.tanh(factors) @ mix + 0.05 * torch.randn(n, N_FEATURES, generator=gen)) * scale


def _reference_error(model: TabularAutoencoder, x: torch.Tensor) -> NDArray[np.float64]:
    """The per-row error written out in float64 numpy from the model's own weights."""

    def layers(seq: torch.nn.Sequential) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
        linears = [m for m in seq if isinstance(m, torch.nn.Linear)]
        return [(lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()) for lin in linears]

    x64 = x.detach().double().numpy()
    z = (x64 - model.mean.double().numpy()) / model.std.double().numpy()
    h = z
    for part in (layers(model.encoder), layers(model.decoder)):
        for i, (weight, bias) in enumerate(part):
            h = h @ weight.T + bias
            if i < len(part) - 1:
                h = np.maximum(h, 0.0)
    errors = np.empty(len(z))
    for row in range(len(z)):  # mean over features, one row at a time
        errors[row] = sum((z[row, j] - h[row, j]) ** 2 for j in range(z.shape[1])) / z.shape[1]
    return errors


def test_shapes_and_dtypes() -> None:
    model = _model().eval()
    model.fit_normalization(torch.randn(20, N_FEATURES))
    for batch in (1, 5):
        x = torch.randn(batch, N_FEATURES)
        assert model.encode(x).shape == (batch, 3)
        assert model(x).shape == (batch, N_FEATURES) and model(x).dtype == torch.float32
        assert model.reconstruction_error(x).shape == (batch,)
    assert model.reconstruction_error(torch.zeros(0, N_FEATURES)).shape == (0,)
    linears = [m for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [16, 8, 3], "encoder narrows to the bottleneck"
    assert isinstance(model.decoder[-1], torch.nn.Linear), "the reconstruction is not squashed by an activation"


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)], ids=["float64", "float32"])
def test_error_per_row_equals_a_float64_reference(dtype: torch.dtype, tol: float) -> None:
    model = _model().to(dtype).eval()
    gen = torch.Generator().manual_seed(1)
    model.fit_normalization(_table(50, gen, torch.randn(2, N_FEATURES, generator=gen)))
    x = 3 * torch.randn(7, N_FEATURES, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        errors = model.reconstruction_error(x.to(dtype))
    expected = torch.from_numpy(_reference_error(model, x)).to(dtype)
    assert_close(errors, expected, rtol=tol, atol=tol, msg=f"reconstruction error per row, {dtype}")
    z = (x.to(dtype) - model.mean) / model.std
    with torch.no_grad():
        in_raw_units = model(x.to(dtype))
    recomputed = ((z - (in_raw_units - model.mean) / model.std) ** 2).mean(-1)
    assert_close(recomputed, errors, rtol=1e-4, atol=tol, msg="forward() is the reconstruction in raw units")


def test_planted_anomalies_score_higher_after_training() -> None:
    gen = torch.Generator().manual_seed(2)
    mix = torch.randn(2, N_FEATURES, generator=gen)
    train, normal, anomalies = _table(512, gen, mix), _table(200, gen, mix), _table(20, gen, mix)
    anomalies[:, :2] += 3 * train[:, :2].std(0)  # shift two columns by three standard deviations
    model = _model(hidden=(32,), latent=2)
    model.fit_normalization(train)
    with torch.no_grad():
        before = model.reconstruction_error(normal).median().item()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        model.reconstruction_error(train).mean().backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        normal_errors = model.reconstruction_error(normal)
        anomaly_errors = model.reconstruction_error(anomalies)
    after = normal_errors.median().item()
    assert after < 0.1 * before, f"training should shrink normal rows' error: median {before:.4f} -> {after:.4f}"
    # Rank-based: the share of (anomaly, normal) pairs ordered correctly (ROC AUC), and every
    # anomaly inside the top 25 of the 220 scores (20 anomalies, a margin of 5 places).
    auc = (anomaly_errors[:, None] > normal_errors[None, :]).double().mean().item()
    assert auc >= 0.99, f"AUC of the anomaly score {auc:.3f}"
    ranks = torch.cat([anomaly_errors, normal_errors]).argsort(descending=True).argsort()[:20]
    assert int(ranks.max()) < 25, f"worst-ranked anomaly at place {int(ranks.max()) + 1} of 220"


def test_runs_on_each_device(device: torch.device) -> None:
    model = _model().double()
    model.fit_normalization(torch.randn(30, N_FEATURES))
    x = torch.randn(6, N_FEATURES, dtype=torch.float64)
    with torch.no_grad():
        expected = model.reconstruction_error(x)
    on_device = model.float().to(device)
    errors = on_device.reconstruction_error(x.float().to(device))
    assert errors.device.type == device.type
    assert_close(errors, expected.float(), msg=f"reconstruction error on {device}")
    errors.mean().backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in on_device.parameters())


def test_bad_inputs_raise_with_the_values() -> None:
    model = _model()
    with pytest.raises(ValueError, match=r"expected features \(N >= 2, 8\), got \(1, 8\)"):
        model.fit_normalization(torch.zeros(1, N_FEATURES))
    with pytest.raises(ValueError, match="1 non-finite"):
        model.fit_normalization(np.array([[np.nan] + [0.0] * 7, [1.0] * 8]))
    with pytest.raises(ValueError, match=r"shape \(B, 8\), got \(3, 5\)"):
        model.reconstruction_error(torch.zeros(3, 5))
    with pytest.raises(TypeError, match="floating"):
        model.reconstruction_error(torch.zeros(3, N_FEATURES, dtype=torch.long))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"latent": 8}, r"latent \(8\) must be smaller than n_features \(8\)"),
        ({"hidden": (16, 0)}, r"hidden width must be >= 1.*\(16, 0\)"),
        ({"latent": 0}, "greater than or equal to 1"),
        ({"dropout": 1.0}, "less than 1"),
    ],
)
def test_config_rejects_bad_fields(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        TabularAutoencoderConfig(**({"n_features": N_FEATURES} | fields))


def test_constant_feature_does_not_divide_by_zero() -> None:
    model = _model().eval()
    data = torch.randn(10, N_FEATURES)
    data[:, 3] = 7.0
    model.fit_normalization(data)
    assert float(model.std[3]) == pytest.approx(1e-6)
    with torch.no_grad():
        assert bool(torch.isfinite(model.reconstruction_error(data)).all())
