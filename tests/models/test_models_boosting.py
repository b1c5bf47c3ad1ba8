"""Tests for mlcraft.models.boosting: GradientBoosting against scikit-learn's
GradientBoostingRegressor / GradientBoostingClassifier (same hyper-parameters and seed), and
against hand-computed F_0 and Newton steps."""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from pydantic import ValidationError

from mlcraft.classroom.testing import assert_close
from mlcraft.models.boosting import GradientBoosting, GradientBoostingConfig

datasets = pytest.importorskip("sklearn.datasets")
ensemble = pytest.importorskip("sklearn.ensemble")

RTOL, ATOL = 0.0, 1e-10  # on float64 predictions (on these data sets the two agree bit for bit)

Data = tuple[NDArray[np.float64], NDArray[np.float64]]


@cache
def _data(name: str) -> Data:
    """Seeded data sets: two bundled with scikit-learn, two generated."""
    if name == "diabetes":
        x, y = datasets.load_diabetes(return_X_y=True)
    elif name == "breast_cancer":
        x, y = datasets.load_breast_cancer(return_X_y=True)
    elif name == "regression":
        x, y = datasets.make_regression(n_samples=250, n_features=6, noise=10.0, random_state=3)
    elif name == "classification":
        x, y = datasets.make_classification(n_samples=250, n_features=6, flip_y=0.1, random_state=4)
    else:
        raise KeyError(name)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def _fit_both(name: str, loss: str, **params: Any) -> tuple[GradientBoosting, Any, NDArray[np.float64]]:
    x, y = _data(name)
    ours = GradientBoosting(GradientBoostingConfig(loss=loss, **params)).fit(x, y)  # type: ignore[arg-type]
    reference_class = ensemble.GradientBoostingClassifier if loss == "log_loss" else ensemble.GradientBoostingRegressor
    theirs = reference_class(**params).fit(x, y)
    return ours, theirs, x


# (data set, max_depth, learning_rate, min_samples_leaf, subsample): every depth 1..4, three
# learning rates, leaves of 1 and 5 rows, and stochastic boosting, on each data set.
CASES = [
    ("diabetes", 1, 0.1, 1, 1.0),
    ("diabetes", 3, 0.5, 5, 0.7),
    ("regression", 2, 1.0, 1, 1.0),
    ("regression", 4, 0.05, 5, 0.8),
]
CLASSIFICATION_CASES = [
    ("breast_cancer", 1, 0.5, 1, 1.0),
    ("breast_cancer", 3, 0.3, 5, 0.7),
    ("classification", 2, 0.1, 1, 1.0),
    ("classification", 4, 1.0, 5, 0.8),
]


@pytest.mark.parametrize(("name", "depth", "lr", "leaf", "subsample"), CASES)
def test_regression_equals_sklearn(name: str, depth: int, lr: float, leaf: int, subsample: float) -> None:
    params = {
        "n_estimators": 25,
        "max_depth": depth,
        "learning_rate": lr,
        "min_samples_leaf": leaf,
        "subsample": subsample,
        "random_state": 11,
    }
    ours, theirs, x = _fit_both(name, "squared_error", **params)
    case = f"{name} {params}"
    assert ours.n_estimators_ == theirs.n_estimators_ == 25
    assert_close(ours.predict(x), theirs.predict(x), rtol=RTOL, atol=ATOL, msg=f"predict, {case}")
    x_new = x[:40] + np.random.default_rng(0).normal(0, 0.05, size=x[:40].shape)  # rows the trees never saw
    assert_close(ours.predict(x_new), theirs.predict(x_new), rtol=RTOL, atol=ATOL, msg=f"predict on new rows, {case}")
    for stage, (a, b) in enumerate(zip(ours.staged_predict(x), theirs.staged_predict(x), strict=True)):
        assert_close(a, b, rtol=RTOL, atol=ATOL, msg=f"staged_predict at stage {stage + 1}, {case}")


@pytest.mark.parametrize(("name", "depth", "lr", "leaf", "subsample"), CLASSIFICATION_CASES)
def test_log_loss_equals_sklearn(name: str, depth: int, lr: float, leaf: int, subsample: float) -> None:
    params = {
        "n_estimators": 25,
        "max_depth": depth,
        "learning_rate": lr,
        "min_samples_leaf": leaf,
        "subsample": subsample,
        "random_state": 5,
    }
    ours, theirs, x = _fit_both(name, "log_loss", **params)
    case = f"{name} {params}"
    assert_close(
        ours.decision_function(x), theirs.decision_function(x), rtol=RTOL, atol=ATOL, msg=f"raw scores, {case}"
    )
    assert_close(ours.predict_proba(x), theirs.predict_proba(x), rtol=RTOL, atol=ATOL, msg=f"predict_proba, {case}")
    np.testing.assert_array_equal(ours.predict(x), theirs.predict(x).astype(np.int64), err_msg=case)
    staged = zip(ours.staged_decision_function(x), theirs.staged_decision_function(x), strict=True)
    for stage, (a, b) in enumerate(staged):
        assert_close(a, b.ravel(), rtol=RTOL, atol=ATOL, msg=f"staged raw scores at stage {stage + 1}, {case}")


def test_log_loss_breaks_split_ties_like_sklearn() -> None:
    """At stage 22 of this run two features separate a node's 6 rows identically; which one wins
    depends on the last bit of the residuals, so a residual computed with numpy's SIMD ``exp``
    instead of C's (as sklearn's Cython does) picks the other one and the scores drift apart."""
    params = {
        "n_estimators": 30,
        "max_depth": 3,
        "learning_rate": 0.3,
        "min_samples_leaf": 3,
        "subsample": 0.7,
        "random_state": 7,
    }
    ours, theirs, x = _fit_both("breast_cancer", "log_loss", **params)
    features = [tree.tree_.feature.tolist() for tree in ours.trees_]
    assert features == [tree.tree_.feature.tolist() for tree in theirs.estimators_[:, 0]], "split features"
    assert_close(
        ours.decision_function(x), theirs.decision_function(x), rtol=RTOL, atol=ATOL, msg="raw scores with a tie"
    )


@pytest.mark.parametrize(("name", "loss"), [("diabetes", "squared_error"), ("breast_cancer", "log_loss")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_early_stopping_stops_where_sklearn_does(name: str, loss: str, seed: int) -> None:
    params = {
        "n_estimators": 300,
        "learning_rate": 0.3,
        "max_depth": 2,
        "random_state": seed,
        "n_iter_no_change": 3,
        "validation_fraction": 0.2,
        "tol": 1e-3,
    }
    ours, theirs, x = _fit_both(name, loss, **params)
    assert ours.n_estimators_ == theirs.n_estimators_ < 300, (name, seed, ours.n_estimators_, theirs.n_estimators_)
    assert len(list(ours.staged_predict(x))) == ours.n_estimators_
    expected = theirs.decision_function(x) if loss == "log_loss" else theirs.predict(x)
    assert_close(
        ours.decision_function(x), expected, rtol=RTOL, atol=ATOL, msg=f"after early stopping, {name} seed {seed}"
    )


def test_zero_stages_predict_the_mean_and_the_prior_log_odds() -> None:
    x, y = _data("diabetes")
    model = GradientBoosting(GradientBoostingConfig(n_estimators=0)).fit(x, y)
    assert model.n_estimators_ == 0 and list(model.staged_predict(x)) == []
    assert_close(model.predict(x), np.full(len(y), y.mean()), rtol=0.0, atol=1e-12, msg="F_0 = mean(y)")
    # sklearn needs n_estimators >= 1; learning_rate=0 leaves its prediction at F_0.
    frozen = ensemble.GradientBoostingRegressor(n_estimators=1, learning_rate=0.0).fit(x, y)
    assert_close(
        model.predict(x), frozen.predict(x), rtol=RTOL, atol=ATOL, msg="F_0 against sklearn's initial estimate"
    )

    xc, yc = _data("breast_cancer")
    clf = GradientBoosting(GradientBoostingConfig(loss="log_loss", n_estimators=0)).fit(xc, yc)
    p = yc.mean()
    assert_close(clf.decision_function(xc), np.full(len(yc), np.log(p / (1 - p))), rtol=0.0, atol=1e-12, msg="F_0")
    assert_close(clf.predict_proba(xc)[:, 1], np.full(len(yc), p), rtol=0.0, atol=1e-12, msg="p = prior")
    frozen_clf = ensemble.GradientBoostingClassifier(n_estimators=1, learning_rate=0.0).fit(xc, yc)
    assert_close(
        clf.decision_function(xc), frozen_clf.decision_function(xc), rtol=RTOL, atol=ATOL, msg="F_0 against sklearn"
    )


def test_one_log_loss_stage_is_a_newton_step_per_leaf() -> None:
    x, y = _data("classification")
    lr = 0.5
    model = GradientBoosting(GradientBoostingConfig(loss="log_loss", n_estimators=1, max_depth=1, learning_rate=lr))
    model.fit(x, y)
    f0 = np.log(y.mean() / (1 - y.mean()))
    p = 1.0 / (1.0 + np.exp(-f0))
    left = x[:, model.trees_[0].tree_.feature[0]] <= model.trees_[0].tree_.threshold[0]
    assert 0 < left.sum() < len(y), "the stump should split the rows"
    expected = np.empty(len(y))
    for side in (left, ~left):  # Newton step: sum(y - p) / sum(p (1 - p)) over the leaf's rows
        expected[side] = f0 + lr * (y[side] - p).sum() / (side.sum() * p * (1 - p))
    assert_close(model.decision_function(x), expected, rtol=0.0, atol=1e-9, msg="F_1 from a hand-computed Newton step")


def test_squared_error_training_loss_falls_stage_by_stage() -> None:
    x, y = _data("regression")
    model = GradientBoosting(GradientBoostingConfig(n_estimators=20, max_depth=2, learning_rate=0.3)).fit(x, y)
    losses = [float(np.mean((f - y) ** 2)) for f in model.staged_predict(x)]
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.2 * float(np.var(y)), (losses[-1], float(np.var(y)))


def test_empty_prediction_input_gives_an_empty_output() -> None:
    x, y = _data("classification")
    model = GradientBoosting(GradientBoostingConfig(loss="log_loss", n_estimators=3)).fit(x, y)
    assert model.predict(x[:0]).shape == (0,)
    assert model.predict_proba(x[:0]).shape == (0, 2)


@pytest.mark.parametrize(
    ("x_bad", "match"),
    [
        (np.array([[1.0, np.nan], [2.0, 3.0], [0.0, 1.0]]), r"non-finite.*row 0, column 1: .*nan"),
        (np.array([[1.0, 2.0], [np.inf, 3.0], [0.0, 1.0]]), r"non-finite.*row 1, column 0: .*inf"),
        (np.array([[1.0, 2.0], [1e39, 3.0], [0.0, 1.0]]), r"float32.*1e\+39"),
        (np.zeros((0, 2)), r"at least one row.*\(0, 2\)"),
        (np.zeros(3), r"2-D.*\(3,\)"),
    ],
    ids=["nan", "inf", "float32-overflow", "empty", "1-d"],
)
def test_fit_rejects_bad_features(x_bad: NDArray[np.float64], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GradientBoosting().fit(x_bad, np.arange(len(x_bad), dtype=np.float64))


@pytest.mark.parametrize(
    ("y_bad", "match"),
    [
        (np.array([0.0, 1.0, 2.0, 1.0]), r"labels 0 and 1.*\[0\.0, 1\.0, 2\.0\]"),
        (np.array([1.0, 1.0, 1.0, 1.0]), r"labels 0 and 1.*\[1\.0\]"),
        (np.array([-1.0, 1.0, -1.0, 1.0]), r"labels 0 and 1.*\[-1\.0, 1\.0\]"),
        (np.array([0.0, 1.0, np.nan, 1.0]), r"1 non-finite"),
        (np.array([0.0, 1.0, 1.0]), r"shape \(4,\).*\(3,\)"),
    ],
    ids=["three-labels", "one-label", "minus-one", "nan", "wrong-length"],
)
def test_log_loss_rejects_bad_targets(y_bad: NDArray[np.float64], match: str) -> None:
    x = np.arange(8, dtype=np.float64).reshape(4, 2)
    with pytest.raises(ValueError, match=match):
        GradientBoosting(GradientBoostingConfig(loss="log_loss")).fit(x, y_bad)


def test_misuse_after_fit_raises_with_the_values() -> None:
    x, y = _data("regression")
    with pytest.raises(ValueError, match="not fitted"):
        GradientBoosting().predict(x)
    model = GradientBoosting(GradientBoostingConfig(n_estimators=2)).fit(x, y)
    with pytest.raises(ValueError, match="X has 5 features, the model was fitted on 6"):
        model.predict(x[:, :5])
    with pytest.raises(ValueError, match="loss='squared_error'"):
        model.predict_proba(x)
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.array([["a"] * 6]))


@pytest.mark.parametrize(
    "bad",
    [
        {"n_estimators": -1},
        {"learning_rate": 0.0},
        {"max_depth": 0},
        {"min_samples_leaf": 0},
        {"subsample": 0.0},
        {"subsample": 1.5},
        {"validation_fraction": 1.0},
        {"n_iter_no_change": 0},
        {"loss": "absolute_error"},
    ],
)
def test_config_rejects_out_of_range_fields(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GradientBoostingConfig(**bad)


def test_config_is_frozen() -> None:
    config = GradientBoostingConfig()
    with pytest.raises(ValidationError):
        config.max_depth = 5
    assert config.max_depth == 3
