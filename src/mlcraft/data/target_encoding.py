"""Target encoding of one categorical column, out of fold, as ``sklearn.preprocessing.TargetEncoder``.

A category is replaced by a shrunk mean of the target over the rows of that category
(Micci-Barreca, 2001, "A preprocessing scheme for high-cardinality categorical attributes in
classification and prediction problems", https://doi.org/10.1145/507533.507538), the way
scikit-learn computes it (https://scikit-learn.org/stable/modules/preprocessing.html#target-encoder):

- ``smooth=s`` (a float, Eq. 7): ``(Σ_c y + s·ȳ) / (n_c + s)``, so a category with few rows is
  pulled toward the prior ``ȳ``, the mean of every training row.
- ``smooth="auto"`` (empirical Bayes, Eqs. 5–6): ``λ_c·ȳ_c + (1 − λ_c)·ȳ`` with
  ``λ_c = σ²·n_c / (σ²·n_c + SS_c / n_c)``, ``σ²`` the variance of the training target, ``ȳ_c`` and
  ``SS_c`` the mean and sum of squared deviations of the category's targets. Where ``λ_c`` is
  0/0 (no rows, or a constant target) the encoding is the prior.

Encoding training rows with statistics that include their own target leaks it: a category seen
once is encoded as its own label. :func:`target_encode_oof` encodes every row with statistics
from the *other* folds only, as ``TargetEncoder.fit_transform`` does (its "cross fitting");
:func:`fit_target_encoding` fits on all rows for new data, as ``TargetEncoder.fit``/``transform``.

Categories: any hashable values (strings, ints). Missing values (NaN, None, ``pd.NA``, NaT) are
one category of their own, as scikit-learn's NaN category (which keeps ``None`` apart from NaN;
here they are the same). The target ``y`` is real: 0/1 for a binary target (scikit-learn's
``target_type="binary"`` after label encoding), any finite numbers for ``"continuous"``.

pandas (``mlcraft[mlops]``) does the factorizing; it is imported when first used, so
``import mlcraft.data`` works without it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["TargetEncoding", "fit_target_encoding", "target_encode_oof"]

Floats = NDArray[np.float64]
Codes = NDArray[np.int64]
Smooth = Literal["auto"] | float


def _check_smooth(smooth: Smooth) -> None:
    if smooth == "auto":
        return
    if isinstance(smooth, bool) or not isinstance(smooth, int | float) or not (math.isfinite(smooth) and smooth >= 0):
        raise ValueError(f"smooth must be 'auto' or a finite float >= 0, got {smooth!r}")


def _factorize(categories: ArrayLike) -> tuple[Codes, Any]:
    """``(codes (N,) int64, uniques (K,))``: codes in order of first appearance, missing as one code."""
    values = np.asarray(categories)
    if values.ndim != 1:
        raise ValueError(f"categories must be 1-D, got shape {values.shape}")
    import pandas as pd  # lazy: pandas is an extra (mlcraft[mlops])

    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), uniques


def _target(y: ArrayLike, n: int) -> Floats:
    target = np.asarray(y)
    if target.ndim != 1 or target.dtype.kind not in "biuf":
        raise ValueError(f"y must be a 1-D array of numbers, got shape {target.shape} and dtype {target.dtype}")
    if len(target) != n:
        raise ValueError(f"categories and y must have the same length, got {n} and {len(target)}")
    if n == 0:
        raise ValueError("categories and y are empty")
    values = target.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(
            f"y must be finite; NaN or inf at positions {np.flatnonzero(~np.isfinite(values))[:5].tolist()}"
        )
    return values


def _encode(codes: Codes, y: Floats, n_categories: int, smooth: Smooth) -> tuple[Floats, float]:
    """``(encoding (K,), prior)`` from training rows ``codes (M,)``, ``y (M,)``; M >= 1.

    Sums run in row order (``bincount``), as scikit-learn's Cython loops, so the results agree
    to rounding.
    """
    prior = float(np.mean(y))
    counts = np.bincount(codes, minlength=n_categories).astype(np.float64)  # (K,)
    sums = np.bincount(codes, weights=y, minlength=n_categories)  # (K,)
    with np.errstate(divide="ignore", invalid="ignore"):  # empty categories: 0/0, replaced below
        if smooth == "auto":
            variance = float(np.var(y))
            means = sums / counts
            squares = np.bincount(codes, weights=(y - means[codes]) ** 2, minlength=n_categories)
            shrink = variance * counts / (variance * counts + squares / counts)  # λ_c
            encoding = shrink * means + (1.0 - shrink) * prior
            return np.where(np.isnan(shrink), prior, encoding), prior
        denominator = counts + smooth
        encoding = (sums + smooth * prior) / denominator
        return np.where(denominator == 0, prior, encoding), prior


def _fold_indices(indices: ArrayLike, n: int, name: str) -> Codes:
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise TypeError(f"{name} must be a 1-D array of integer row indices, got shape {idx.shape}, dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    outside = (idx < 0) | (idx >= n)
    if outside.any():
        raise ValueError(f"{name} has indices outside [0, {n}): {idx[outside][:5].tolist()}")
    return idx


def target_encode_oof(
    categories: ArrayLike,
    y: ArrayLike,
    folds: Iterable[tuple[ArrayLike, ArrayLike]],
    *,
    smooth: Smooth = "auto",
) -> Floats:
    """Out-of-fold target encoding: each row encoded from the training part of the fold that tests it.

    Args:
        categories (array[N]): category of each row (hashable; missing values are one category).
        y (array[N]): finite real target (0/1 for a binary one).
        folds: ``(train_idx, test_idx)`` pairs of int row indices, e.g. ``KFold(...).split(x)``.
            Every row must be in exactly one ``test_idx``; within a fold ``train_idx`` and
            ``test_idx`` must be disjoint, and ``train_idx`` non-empty.
        smooth: ``"auto"`` (empirical Bayes) or a float ``>= 0`` (see the module docstring).

    Returns:
        (array[N] float64): the encodings. In each fold the statistics (prior, ``σ²`` for
        ``"auto"``, per-category sums) come from ``train_idx`` alone, so ``y[i]`` never affects
        row ``i``'s encoding; a category absent from a fold's training part gets that fold's prior.

    Equals ``TargetEncoder(smooth=smooth, target_type=..., cv=folds).fit_transform(x[:, None], y)``
    given the same splits.
    """
    _check_smooth(smooth)
    codes, uniques = _factorize(categories)
    n = len(codes)
    target = _target(y, n)
    encoded = np.full(n, np.nan)
    times_tested = np.zeros(n, dtype=np.int64)
    for i, (train, test) in enumerate(folds):
        train_idx = _fold_indices(train, n, f"folds[{i}] train_idx")
        test_idx = _fold_indices(test, n, f"folds[{i}] test_idx")
        if len(train_idx) == 0:
            raise ValueError(f"folds[{i}] has no training rows")
        shared = np.intersect1d(train_idx, test_idx)
        if shared.size:
            raise ValueError(f"folds[{i}] has rows in both train_idx and test_idx: {shared[:5].tolist()}")
        encoding, _ = _encode(codes[train_idx], target[train_idx], len(uniques), smooth)
        encoded[test_idx] = encoding[codes[test_idx]]
        np.add.at(times_tested, test_idx, 1)
    wrong = np.flatnonzero(times_tested != 1)
    if wrong.size:
        raise ValueError(
            "every row must be in exactly one test fold; rows "
            f"{wrong[:5].tolist()} are tested {times_tested[wrong[:5]].tolist()} times"
        )
    return encoded


@dataclass(frozen=True)
class TargetEncoding:
    """A fitted encoding: made by :func:`fit_target_encoding`, applied by :meth:`transform`."""

    categories: Any  # pandas.Index (K,): the categories seen in fit, in order of first appearance
    encodings: Floats  # (K,) the encoding of each, float64
    prior: float  # mean of the training target: the encoding of a category not seen in fit
    smooth: Smooth  # the smoothing it was fitted with

    def transform(self, categories: ArrayLike) -> Floats:
        """Encode ``categories (array[M])``: known categories by their encoding, unseen ones by
        the prior. Returns (array[M] float64). Missing values match a missing category seen in fit."""
        values = np.asarray(categories)
        if values.ndim != 1:
            raise ValueError(f"categories must be 1-D, got shape {values.shape}")
        position = np.asarray(self.categories.get_indexer(values), dtype=np.int64)  # (M,), -1 = unseen
        return np.where(position >= 0, self.encodings[np.maximum(position, 0)], self.prior)


def fit_target_encoding(categories: ArrayLike, y: ArrayLike, *, smooth: Smooth = "auto") -> TargetEncoding:
    """Fit the encoding on every row, to transform *new* data (validation, test, serving).

    Args: ``categories (array[N])``, ``y (array[N])`` and ``smooth`` as :func:`target_encode_oof`.

    Do not use ``fit_target_encoding(x, y).transform(x)`` as training features: each row's own
    target is inside its encoding (use :func:`target_encode_oof`). Equals
    ``TargetEncoder(smooth=smooth).fit(x[:, None], y).transform(new[:, None])``.
    """
    _check_smooth(smooth)
    codes, uniques = _factorize(categories)
    encoding, prior = _encode(codes, _target(y, len(codes)), len(uniques), smooth)
    import pandas as pd  # lazy, as in _factorize

    return TargetEncoding(pd.Index(uniques), encoding, prior, smooth)
