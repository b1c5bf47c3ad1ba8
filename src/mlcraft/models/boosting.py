"""Gradient boosting written out, on top of scikit-learn's regression tree.

Follows Friedman (2001), "Greedy Function Approximation: A Gradient Boosting Machine"
(https://doi.org/10.1214/aos/1013203451), Algorithm 1, in the form of scikit-learn's
``GradientBoostingRegressor`` / ``GradientBoostingClassifier``
(https://scikit-learn.org/stable/modules/ensemble.html#gradient-boosting, ``sklearn/ensemble/_gb.py``):

1. ``F_0`` = the constant that minimises the loss: the mean of ``y`` (squared error) or the
   log-odds of the positive class's share, clipped to ``[eps, 1 - eps]`` (log loss).
2. Each stage fits a ``DecisionTreeRegressor`` (squared-error splits) to the negative gradient
   ``r = -dL/dF``: ``y - F`` (squared error), ``y - sigmoid(F)`` (log loss).
3. Leaf values: the tree's own means for squared error (already the optimal step); for log loss
   one Newton step per leaf, ``sum(r) / sum(p (1 - p))`` (Friedman's Algorithm 5 with
   ``F`` = log-odds instead of half of it), where ``p = y - r``.
4. ``F_m = F_{m-1} + learning_rate * leaf_value(x)``.

Equal to scikit-learn's estimators given the same hyper-parameters and ``random_state``: the
same ``RandomState`` draws the trees' feature orders (and the subsample masks) in the same order,
features are cast to float32 as scikit-learn does, and early stopping uses the same split and rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import Field

from mlcraft.config.base import FrozenConfig
from mlcraft.utils.logging import get_logger

if TYPE_CHECKING:  # scikit-learn is in mlcraft[course]: imported when a model is fitted, so that
    # `import mlcraft.models` works in the serving install (mlcraft[mlops]) too
    from sklearn.tree import DecisionTreeRegressor  # type: ignore[import-untyped]

__all__ = ["GradientBoosting", "GradientBoostingConfig"]

log = get_logger(__name__)

Loss = Literal["squared_error", "log_loss"]
_LEAF = -1  # sklearn.tree._tree.TREE_LEAF: children_left of a leaf


class GradientBoostingConfig(FrozenConfig):
    """Hyper-parameters, named and defaulted as in scikit-learn's ``GradientBoosting*``."""

    loss: Loss = "squared_error"  # "log_loss": binary classification with labels 0/1
    n_estimators: int = Field(default=100, ge=0, le=100_000)  # boosting stages (0: the constant F_0)
    learning_rate: float = Field(default=0.1, gt=0.0)  # shrinkage of every tree's contribution
    max_depth: int = Field(default=3, ge=1, le=64)  # depth of each tree (1: stumps)
    min_samples_leaf: int = Field(default=1, ge=1)  # fewest training rows in a leaf
    subsample: float = Field(default=1.0, gt=0.0, le=1.0)  # share of rows each tree sees (< 1: stochastic)
    random_state: int | None = Field(default=0, ge=0, lt=2**32)  # seeds trees, subsamples, validation split
    validation_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)  # held out when n_iter_no_change is set
    n_iter_no_change: int | None = Field(default=None, ge=1)  # early-stopping patience (None: off)
    tol: float = Field(default=1e-4, ge=0.0)  # a validation loss must beat an old one by more than this


def _check_features(x: ArrayLike, n_features: int | None = None) -> NDArray[np.float32]:
    """``x`` as a float32 ``(N, F)`` array, the dtype the trees split on; raises on NaN/inf."""
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"X must be numeric, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {array.shape}")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"X has {array.shape[1]} features, the model was fitted on {n_features}")
    with np.errstate(over="ignore"):  # values beyond float32's range become inf, reported below
        x32 = np.ascontiguousarray(array, dtype=np.float32)
    bad = ~np.isfinite(x32)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"X has {int(bad.sum())} non-finite values (NaN, inf, or beyond float32's range), "
            f"first at row {row}, column {col}: {array[row, col]!r}"
        )
    return x32


def _check_targets(y: ArrayLike, n_samples: int, loss: Loss) -> NDArray[np.float64]:
    """``y`` as float64 ``(N,)``; for log loss only 0 and 1, both present."""
    target = np.asarray(y, dtype=np.float64)
    if target.shape != (n_samples,):
        raise ValueError(f"y must have shape ({n_samples},) to match X, got {target.shape}")
    if not np.isfinite(target).all():
        raise ValueError(f"y has {int((~np.isfinite(target)).sum())} non-finite values")
    if loss == "log_loss":
        labels = np.unique(target)
        if not np.isin(labels, (0.0, 1.0)).all() or len(labels) != 2:
            raise ValueError(f"log_loss needs labels 0 and 1 (both present), got labels {labels.tolist()[:10]}")
    return target


def _initial_raw(loss: Loss, y: NDArray[np.float64]) -> float:
    """``F_0``: the mean, or the log-odds of the prior clipped to ``[eps, 1 - eps]`` (sklearn's ``DummyClassifier``)."""
    if loss == "squared_error":
        return float(np.mean(y))
    eps = np.finfo(np.float64).eps
    prior = np.clip(np.count_nonzero(y == 1.0) / len(y), eps, 1 - eps)
    from scipy.special import logit  # type: ignore[import-untyped]  # lazy, see the imports

    return float(logit(prior))


def _c_exp(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """``exp`` from the C library, element by element. numpy's SIMD ``exp`` differs from it in the
    last bit for a few percent of inputs; sklearn's Cython loss calls C's ``exp``, and a last-bit
    change in a residual can flip a tie between two splits that separate the same rows."""
    return np.fromiter(map(math.exp, a.tolist()), dtype=np.float64, count=a.size).reshape(a.shape)


def _negative_gradient(loss: Loss, y: NDArray[np.float64], raw: NDArray[np.float64]) -> NDArray[np.float64]:
    """``-dL/dF`` per row. Log loss: ``y - sigmoid(F)`` in the overflow-safe form of sklearn's ``_loss``."""
    if loss == "squared_error":
        return y - raw
    safe = raw > -37.0
    exp_neg = _c_exp(-np.where(safe, raw, 0.0))
    gradient = np.where(safe, ((1 - y) - y * exp_neg) / (1 + exp_neg), _c_exp(np.minimum(raw, -37.0)) - y)
    return -gradient


def _mean_loss(loss: Loss, y: NDArray[np.float64], raw: NDArray[np.float64]) -> float:
    """Mean squared error, or mean binomial deviance ``2 (log(1 + e^F) - y F)`` (sklearn's early-stopping score)."""
    if loss == "squared_error":
        return 2.0 * float(np.mean(0.5 * (raw - y) ** 2))
    log1pexp = np.where(  # log(1 + e^F) without overflow, the cut-offs of sklearn's _loss
        raw <= -37,
        np.exp(np.minimum(raw, -37.0)),
        np.where(raw <= 18, np.log1p(np.exp(np.minimum(raw, 18.0))), raw + np.exp(-np.maximum(raw, 18.0))),
    )
    return 2.0 * float(np.mean(log1pexp - y * raw))


def _selection_mask(n_samples: int, n_in_bag: int, rng: np.random.RandomState) -> NDArray[np.bool_]:
    """Exactly ``n_in_bag`` rows drawn without replacement by selection sampling (Knuth's
    Algorithm S), the draws of sklearn's ``_random_sample_mask``."""
    draws = rng.uniform(size=n_samples)
    mask = np.zeros(n_samples, dtype=bool)
    taken = 0
    for i in range(n_samples):
        if draws[i] * (n_samples - i) < n_in_bag - taken:
            mask[i] = True
            taken += 1
    return mask


class GradientBoosting:
    """Boosted regression trees for regression (squared error) or binary classification (log loss).

    After :meth:`fit`: ``init_`` (``F_0``), ``trees_`` (fitted ``DecisionTreeRegressor``s, used for
    their regions only), ``leaf_values_`` (one float64 ``(n_nodes,)`` array per tree, indexed by
    ``tree.apply``), ``n_estimators_`` (stages kept; fewer than ``n_estimators`` after early
    stopping) and ``n_features_in_``.
    """

    init_: float
    trees_: list[DecisionTreeRegressor]
    leaf_values_: list[NDArray[np.float64]]
    n_estimators_: int
    n_features_in_: int

    def __init__(self, config: GradientBoostingConfig | None = None) -> None:
        self.config = config or GradientBoostingConfig()

    def fit(self, x: ArrayLike, y: ArrayLike) -> GradientBoosting:
        """Fit on features ``x`` ``(N, F)`` (any real dtype; cast to float32) and targets ``y`` ``(N,)``.

        With ``n_iter_no_change`` set, ``validation_fraction`` of the rows (stratified for log
        loss) are held out by ``train_test_split(random_state=random_state)``; after each stage,
        training stops unless the validation loss is more than ``tol`` below one of the last
        ``n_iter_no_change`` recorded losses. The stage that failed is kept (as in scikit-learn).

        Raises:
            ValueError: empty or non-finite ``x``, ``y`` of the wrong length, labels other than 0/1
                for log loss, or a validation split that leaves one class out of training.
        """
        from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]  # lazy, see the imports
        from sklearn.tree import DecisionTreeRegressor

        cfg = self.config
        features = _check_features(x)
        if features.shape[0] < 1 or features.shape[1] < 1:
            raise ValueError(f"X must have at least one row and one column, got shape {features.shape}")
        target = _check_targets(y, features.shape[0], cfg.loss)
        x_val: NDArray[np.float32] | None = None
        y_val: NDArray[np.float64] | None = None
        if cfg.n_iter_no_change is not None:
            features, x_val, target, y_val = train_test_split(
                features,
                target,
                random_state=cfg.random_state,
                test_size=cfg.validation_fraction,
                stratify=target if cfg.loss == "log_loss" else None,
            )
            if cfg.loss == "log_loss" and len(np.unique(target)) < 2:
                raise ValueError(f"the validation split left only labels {np.unique(target).tolist()} to train on")
        self.n_features_in_ = features.shape[1]
        self.init_ = _initial_raw(cfg.loss, target)
        self.trees_, self.leaf_values_ = [], []
        raw = np.full(len(target), self.init_)  # F(x_i), float64
        raw_val = None if x_val is None else np.full(len(x_val), self.init_)
        history = np.full(cfg.n_iter_no_change or 1, np.inf)  # the last n_iter_no_change validation losses
        rng = np.random.RandomState(cfg.random_state)  # one stream for subsamples and trees, as in sklearn
        n_in_bag = max(1, int(cfg.subsample * len(target)))
        in_bag = np.ones(len(target), dtype=bool)
        for stage in range(cfg.n_estimators):
            if cfg.subsample < 1.0:
                in_bag = _selection_mask(len(target), n_in_bag, rng)
            weight = in_bag.astype(np.float64)  # out-of-bag rows weigh 0 in the tree
            residual = _negative_gradient(cfg.loss, target, raw)
            tree = DecisionTreeRegressor(
                max_depth=cfg.max_depth, min_samples_leaf=cfg.min_samples_leaf, random_state=rng
            )
            tree.fit(features, residual, sample_weight=weight)
            leaves = tree.apply(features)  # (N,) node id of each row's leaf
            values = self._leaf_values(tree, leaves, in_bag, target, residual)
            raw += cfg.learning_rate * values[leaves]
            self.trees_.append(tree)
            self.leaf_values_.append(values)
            if raw_val is not None and y_val is not None and x_val is not None:
                raw_val += cfg.learning_rate * values[tree.apply(x_val)]
                val_loss = _mean_loss(cfg.loss, y_val, raw_val)
                if not np.any(val_loss + cfg.tol < history):
                    log.debug("early_stopping", stage=stage + 1, validation_loss=val_loss)
                    break
                history[stage % len(history)] = val_loss
        self.n_estimators_ = len(self.trees_)
        return self

    def _leaf_values(
        self,
        tree: DecisionTreeRegressor,
        leaves: NDArray[np.intp],
        in_bag: NDArray[np.bool_],
        target: NDArray[np.float64],
        residual: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Value of every node ``(n_nodes,)``: the tree's mean (squared error) or one Newton step (log loss)."""
        values = np.array(tree.tree_.value[:, 0, 0], dtype=np.float64)  # (n_nodes,) weighted means of residual
        if self.config.loss == "squared_error":
            return values
        for leaf in np.flatnonzero(tree.tree_.children_left == _LEAF):
            rows = np.flatnonzero((leaves == leaf) & in_bag)
            r = residual[rows]
            p = target[rows] - r  # sigmoid(F) of these rows
            hessian = float(np.mean(p * (1 - p))) if len(rows) else 0.0
            values[leaf] = 0.0 if abs(hessian) < 1e-150 else float(np.mean(r)) / hessian  # sklearn's _safe_divide
        return values

    def _check_fitted(self) -> None:
        if not hasattr(self, "trees_"):
            raise ValueError("this GradientBoosting is not fitted yet: call fit(X, y) first")

    def _stages(self, x: ArrayLike) -> Iterator[NDArray[np.float64]]:
        """``F_0(x), F_1(x), ...``: one float64 ``(N,)`` array, updated in place between yields."""
        self._check_fitted()
        features = _check_features(x, self.n_features_in_)
        raw = np.full(features.shape[0], self.init_)
        yield raw
        for tree, values in zip(self.trees_, self.leaf_values_, strict=True):
            if features.shape[0]:  # tree.apply refuses zero rows
                raw += self.config.learning_rate * values[tree.apply(features)]
            yield raw

    def staged_decision_function(self, x: ArrayLike) -> Iterator[NDArray[np.float64]]:
        """Raw scores ``F_m(x)`` ``(N,)`` float64 after each stage ``m = 1 .. n_estimators_``."""
        stages = self._stages(x)
        next(stages)  # F_0
        for raw in stages:
            yield raw.copy()

    def decision_function(self, x: ArrayLike) -> NDArray[np.float64]:
        """Raw score ``F(x)`` ``(N,)`` float64: the prediction (squared error) or the log-odds of class 1."""
        *_, raw = self._stages(x)
        return raw

    def _from_raw(self, raw: NDArray[np.float64]) -> NDArray[np.float64] | NDArray[np.int64]:
        if self.config.loss == "squared_error":
            return raw
        return (raw >= 0).astype(np.int64)  # sklearn's tie rule: F = 0 predicts class 1

    def predict(self, x: ArrayLike) -> NDArray[np.float64] | NDArray[np.int64]:
        """Predictions ``(N,)``: float64 values (squared error) or int64 labels 0/1 (log loss)."""
        return self._from_raw(self.decision_function(x))

    def staged_predict(self, x: ArrayLike) -> Iterator[NDArray[np.float64] | NDArray[np.int64]]:
        """:meth:`predict` after each stage ``m = 1 .. n_estimators_`` (nothing for zero stages)."""
        for raw in self.staged_decision_function(x):
            yield self._from_raw(raw)

    def predict_proba(self, x: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities ``(N, 2)`` float64, ``[1 - sigmoid(F), sigmoid(F)]`` (log loss only)."""
        if self.config.loss != "log_loss":
            raise ValueError(f"predict_proba needs loss='log_loss', this model has loss={self.config.loss!r}")
        from scipy.special import expit  # lazy, see the imports

        p1 = expit(self.decision_function(x))
        return np.stack([1 - p1, p1], axis=1)
