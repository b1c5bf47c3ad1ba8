"""The synthetic table (mlcraft.data.tabular), the tabular MLP (mlcraft.models.tabular) and its recipe."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
import torch

from mlcraft.classroom.testing import assert_close
from mlcraft.config.training import TrainingConfig
from mlcraft.data.tabular import CLASS_NAMES, FEATURE_NAMES, TabularData, make_tabular_data
from mlcraft.models.tabular import TabularMLP, TabularMLPConfig, predict_proba
from mlcraft.recipes.tabular import train_tabular_mlp


def test_data_is_deterministic_balanced_and_typed() -> None:
    a, b = make_tabular_data(3000, seed=5), make_tabular_data(3000, seed=5)
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.features.dtype == np.float32 and a.labels.dtype == np.int64
    assert a.features.shape == (3000, len(FEATURE_NAMES))
    shares = np.bincount(a.labels, minlength=3) / 3000
    assert shares.min() > 0.25, f"classes should be roughly balanced, got {shares}"
    assert not np.array_equal(make_tabular_data(100, seed=6).features, a.features[:100])


def test_split_and_bad_arguments() -> None:
    data = make_tabular_data(10)
    train, val = data.split(0.8)
    assert (len(train), len(val)) == (8, 2)
    with pytest.raises(ValueError, match="fraction"):
        data.split(1.0)
    with pytest.raises(ValueError, match="n_samples"):
        make_tabular_data(0)


def test_mlp_standardizes_inside_like_a_float64_reference() -> None:
    torch.manual_seed(0)
    data = make_tabular_data(500, seed=1)
    model = TabularMLP(TabularMLPConfig(hidden=(16,))).double().eval()
    model.fit_normalization(data.features)
    x = torch.from_numpy(data.features.astype(np.float64))
    mean, std = x.mean(0), x.std(0)
    lin1, lin2 = cast(torch.nn.Linear, model.net[0]), cast(torch.nn.Linear, model.net[3])
    z = (x - mean) / std
    expected = torch.nn.functional.gelu(z @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias
    assert_close(model(x), expected, msg="MLP forward with built-in standardization")
    with pytest.raises(ValueError, match="expected features"):
        model.fit_normalization(np.zeros((5, 3)))


def test_trained_model_learns_the_structure(
    trained_model: TabularMLP, tabular: tuple[TabularData, TabularData]
) -> None:
    _, val = tabular
    probabilities = predict_proba(trained_model, val.features)
    assert probabilities.shape == (len(val), 3)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    accuracy = float((probabilities.argmax(1) == val.labels).mean())
    assert accuracy > 0.75, f"validation accuracy {accuracy:.3f}; the classes are learnable to about 0.8"
    assert not trained_model.training, "train_tabular_mlp returns the model in eval mode"


def test_mlp_gives_the_same_logits_on_every_device(device: torch.device, trained_model: TabularMLP) -> None:
    x = torch.from_numpy(make_tabular_data(64, seed=9).features)
    with torch.inference_mode():
        expected = trained_model(x)
        moved = TabularMLP(trained_model.config).to(device)
        moved.load_state_dict(trained_model.state_dict())
        got = moved.eval()(x.to(device))
    assert_close(got.cpu(), expected, msg=f"TabularMLP on {device} vs cpu")


def test_model_defaults_match_the_synthetic_table() -> None:
    config = TabularMLPConfig()
    assert (config.n_features, config.n_classes) == (len(FEATURE_NAMES), len(CLASS_NAMES))


def test_the_recipe_is_seeded_once_by_the_training_config(tabular: tuple[TabularData, TabularData]) -> None:
    train, _ = tabular
    small = TrainingConfig(lr=3e-3, batch_size=64, epochs=1, amp=False, progress=False, seed=3)
    first = train_tabular_mlp(train, training_config=small)
    torch.manual_seed(999)  # the global state before the call must not matter
    second = train_tabular_mlp(train, training_config=small)
    other = train_tabular_mlp(train, training_config=small.model_copy(update={"seed": 4}))
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    first_layer, other_layer = cast(torch.nn.Linear, first.net[0]), cast(torch.nn.Linear, other.net[0])
    assert not torch.equal(first_layer.weight, other_layer.weight), "a different seed gives different weights"
