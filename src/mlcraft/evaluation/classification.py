"""Binary-classification metrics written out in numpy, equal to scikit-learn's (05_tabular).

Each function follows one reference and is tested against it to 1e-12 (float64 throughout):

- :func:`roc_auc`: the Mann–Whitney U statistic with average ranks for ties (Hanley & McNeil,
  1982, https://doi.org/10.1148/radiology.143.1.7063747), equal to
  ``sklearn.metrics.roc_auc_score`` (https://scikit-learn.org/stable/modules/model_evaluation.html#roc-metrics).
  Sorting and binary search: O(n log n), and exact integer rank sums, so 10M scores are fine.
- :func:`average_precision` (alias :func:`pr_auc`): the step integral of the precision–recall
  curve, ``AP = Σ_k (R_k − R_{k−1}) P_k`` over the distinct scores, as
  ``sklearn.metrics.average_precision_score``; tied scores form one threshold.
- :func:`reliability_curve` and :func:`expected_calibration_error`: binned calibration as
  ``sklearn.calibration.calibration_curve`` (Naeini et al., 2015, "Obtaining well calibrated
  probabilities using Bayesian binning", https://ojs.aaai.org/index.php/AAAI/article/view/9602).
- :func:`brier_score` and :func:`log_loss`: as ``sklearn.metrics.brier_score_loss`` and
  ``sklearn.metrics.log_loss`` (probabilities clipped to ``[eps, 1 − eps]``, ``eps`` = float64 eps).
- :func:`min_cost_threshold`: the decision threshold of least misclassification cost (Elkan,
  2001, "The foundations of cost-sensitive learning").
- :func:`precision_at_k`: precision of the ``k`` highest scores, ties broken by row index.

Conventions: ``y_true`` is 1-D and holds only 0 and 1 (bool, integers or floats equal to 0/1);
scores are finite real numbers (NaN and ±inf raise ``ValueError``); probabilities lie in [0, 1].
"""

from __future__ import annotations

import operator
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ReliabilityCurve",
    "average_precision",
    "brier_score",
    "expected_calibration_error",
    "log_loss",
    "min_cost_threshold",
    "pr_auc",
    "precision_at_k",
    "reliability_curve",
    "roc_auc",
]

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
Strategy = Literal["uniform", "quantile"]


class ReliabilityCurve(NamedTuple):
    """What :func:`reliability_curve` returns; ``B`` = ``n_bins``, every array float64 but ``counts``."""

    edges: Floats  # (B + 1,) bin edges; bin b is (edges[b], edges[b + 1]], the first also holds edges[0]
    mean_predicted: Floats  # (B,) mean probability in each bin, NaN where the bin is empty
    observed_frequency: Floats  # (B,) fraction of positives in each bin, NaN where the bin is empty
    counts: NDArray[np.int64]  # (B,) rows in each bin; sums to N


def _labels(y_true: ArrayLike) -> Bools:
    """``y_true`` as a bool array (True = positive), checked to be 1-D and to hold only 0 and 1."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y_true must hold 0/1 labels as bool or numbers, got dtype {y.dtype}")
    bad = (y != 0) & (y != 1)  # NaN is bad too
    if bad.any():
        raise ValueError(f"y_true must hold only 0 and 1, got {np.unique(y[bad])[:5].tolist()}")
    return y.astype(bool)


def _pair(y_true: ArrayLike, values: ArrayLike, name: str) -> tuple[Bools, Floats]:
    """Validated ``(labels (N,) bool, values (N,) float64)``, non-empty, finite, of equal length."""
    positive = _labels(y_true)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if len(x) != len(positive):
        raise ValueError(f"y_true and {name} must have the same length, got {len(positive)} and {len(x)}")
    if len(x) == 0:
        raise ValueError(f"y_true and {name} are empty")
    if not np.isfinite(x).all():
        where = np.flatnonzero(~np.isfinite(x))
        raise ValueError(
            f"{name} must be finite; NaN or inf at positions {where[:5].tolist()}: {x[where[:5]].tolist()}"
        )
    return positive, x


def _probabilities(y_true: ArrayLike, probs: ArrayLike) -> tuple[Bools, Floats]:
    positive, p = _pair(y_true, probs, "probs")
    outside = (p < 0) | (p > 1)
    if outside.any():
        raise ValueError(f"probs must lie in [0, 1], got {p[outside][:5].tolist()}")
    return positive, p


def _counts_below(positive: Bools, score: Floats) -> tuple[Floats, NDArray[np.intp], NDArray[np.intp]]:
    """For the ``G`` distinct scores ``u`` (ascending): ``(u (G,), rows with score < u (G,),
    positives with score < u (G,))``. Cumulative counts from two sorts and a binary search: O(N log N)."""
    all_sorted = np.sort(score)  # (N,)
    first = np.flatnonzero(np.r_[True, all_sorted[1:] != all_sorted[:-1]])  # (G,) first position of each value
    values = all_sorted[first]
    positives_below = np.searchsorted(np.sort(score[positive]), values, side="left")  # (G,)
    return values, first, positives_below


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: P(score of a random positive > that of a random negative) + ½ P(tie).

    Args:
        y_true (array[N]): 0/1 labels (bool or numbers); both classes must occur.
        scores (array[N]): finite real scores, higher = more positive; any ties.

    Computed as Mann–Whitney ``U / (n₊ n₋)`` with ``U = R₊ − n₊(n₊ + 1)/2``, ``R₊`` the sum of the
    positives' 1-based ranks among all N scores, tied scores sharing their average rank. A score
    ``s`` with ``b`` scores below it and ``e`` at or below it (itself included) has average rank
    ``(b + 1 + e) / 2``: two binary searches in the sorted scores, no argsort. Twice the ranks are
    integers, summed exactly in int64, and the result is rounded once. O(N log N); 10M scores
    take about a second. All scores equal gives 0.5. Reference: ``sklearn.metrics.roc_auc_score``.
    """
    positive, score = _pair(y_true, scores, "scores")
    n_pos = int(positive.sum())
    n_neg = len(score) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc needs both classes in y_true, got {n_pos} positives and {n_neg} negatives")
    all_sorted = np.sort(score)  # (N,)
    positive_scores = np.sort(score[positive])  # (N₊,) sorted queries search faster
    below = np.searchsorted(all_sorted, positive_scores, side="left")  # (N₊,) scores < s
    at_or_below = np.searchsorted(all_sorted, positive_scores, side="right")  # (N₊,) scores <= s
    twice_rank_sum = int(below.sum(dtype=np.int64)) + int(at_or_below.sum(dtype=np.int64)) + n_pos
    twice_u = twice_rank_sum - n_pos * (n_pos + 1)
    return twice_u / (2 * n_pos * n_neg)  # Python ints: exact until this one rounding


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Average precision: ``Σ_k (R_k − R_{k−1}) P_k`` over thresholds at the distinct scores, high to low.

    Args:
        y_true (array[N]): 0/1 labels; at least one positive (recall is undefined otherwise).
        scores (array[N]): finite real scores.

    ``P_k``, ``R_k``: precision and recall when every row with ``score >= s_k`` is predicted
    positive. Rows with equal scores enter together (one threshold), so the result does not depend
    on their order. No interpolation. Reference: ``sklearn.metrics.average_precision_score``.
    """
    positive, score = _pair(y_true, scores, "scores")
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise ValueError(f"average_precision needs at least one positive in y_true, got 0 of {len(score)}")
    _, rows_below, positives_below = _counts_below(positive, score)
    predicted = len(score) - rows_below  # (G,) rows with score >= u: predicted positive at threshold u
    true_positives = n_pos - positives_below  # (G,)
    positives_at = np.diff(positives_below, append=n_pos)  # (G,) positives with score == u: the recall step
    return float(np.sum(positives_at / n_pos * (true_positives / predicted)))


pr_auc = average_precision  # the same number under the name used for "area under the PR curve"


def reliability_curve(
    y_true: ArrayLike, probs: ArrayLike, n_bins: int = 10, strategy: Strategy = "uniform"
) -> ReliabilityCurve:
    """Per-bin mean predicted probability, observed positive frequency and count.

    Args:
        y_true (array[N]): 0/1 labels (one class is allowed).
        probs (array[N]): predicted probabilities of the positive class, in [0, 1], no NaN.
        n_bins: number of bins ``B >= 1``.
        strategy: ``"uniform"``: edges ``linspace(0, 1, B + 1)``; ``"quantile"``: edges at the
            ``linspace(0, 100, B + 1)`` percentiles of ``probs`` (equal edges make empty bins).

    Bin ``b`` holds ``edges[b] < p <= edges[b + 1]``; the first bin also holds everything at or
    below ``edges[1]`` (so 0.0 is in the first bin) and with uniform edges 1.0 is in the last:
    ``searchsorted(edges[1:-1], p, side="left")`` as ``sklearn.calibration.calibration_curve``,
    whose ``(prob_true, prob_pred)`` are ``observed_frequency`` and ``mean_predicted`` of the
    non-empty bins.
    """
    positive, p = _probabilities(y_true, probs)
    if isinstance(n_bins, bool) or operator.index(n_bins) < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 1, n_bins + 1) * 100)
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    bins = np.searchsorted(edges[1:-1], p, side="left")  # (N,) in [0, B)
    counts = np.bincount(bins, minlength=n_bins).astype(np.int64)
    prob_sums = np.bincount(bins, weights=p, minlength=n_bins)
    positive_counts = np.bincount(bins, weights=positive.astype(np.float64), minlength=n_bins)
    filled = counts > 0
    mean_predicted = np.full(n_bins, np.nan)
    observed = np.full(n_bins, np.nan)
    mean_predicted[filled] = prob_sums[filled] / counts[filled]
    observed[filled] = positive_counts[filled] / counts[filled]
    return ReliabilityCurve(edges, mean_predicted, observed, counts)


def expected_calibration_error(
    y_true: ArrayLike, probs: ArrayLike, n_bins: int = 10, strategy: Strategy = "uniform"
) -> float:
    """ECE: ``Σ_b (n_b / N) · |observed_b − mean_predicted_b|`` over the non-empty bins.

    The bins are those of :func:`reliability_curve` (same arguments, same edge rules). 0 for a
    perfectly calibrated model; at most 1. Reference: Naeini et al. (2015); Guo et al. (2017),
    "On calibration of modern neural networks", https://arxiv.org/abs/1706.04599.
    """
    curve = reliability_curve(y_true, probs, n_bins, strategy)
    filled = curve.counts > 0
    weights = curve.counts[filled] / curve.counts.sum()
    gaps = np.abs(curve.observed_frequency[filled] - curve.mean_predicted[filled])
    return float(np.sum(weights * gaps))


def brier_score(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Mean squared error of the probabilities: ``mean((p − y)²)``, in [0, 1].

    Args: ``y_true (array[N])`` 0/1 labels; ``probs (array[N])`` in [0, 1].
    Reference: ``sklearn.metrics.brier_score_loss`` (binary, its default scale).
    """
    positive, p = _probabilities(y_true, probs)
    return float(np.mean((p - positive) ** 2))


def log_loss(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Mean negative log-likelihood: ``−mean(y log p + (1 − y) log(1 − p))``, in nats.

    Args: ``y_true (array[N])`` 0/1 labels (one class is allowed); ``probs (array[N])`` in [0, 1].

    Clipping, as ``sklearn.metrics.log_loss`` on float64 input: the probability given to the
    true class (``p`` for a positive, ``1 − p`` for a negative, computed first) is clipped to
    ``[eps, 1 − eps]`` with ``eps = np.finfo(np.float64).eps ≈ 2.2e-16``, so a confident mistake
    costs at most ``−log(eps) ≈ 36.04`` instead of infinity.
    """
    positive, p = _probabilities(y_true, probs)
    eps = float(np.finfo(np.float64).eps)
    p_true_class = np.clip(np.where(positive, p, 1.0 - p), eps, 1.0 - eps)
    return float(-np.mean(np.log(p_true_class)))


def min_cost_threshold(y_true: ArrayLike, scores: ArrayLike, *, cost_fp: float, cost_fn: float) -> tuple[float, float]:
    """The threshold ``t`` (predict positive when ``score >= t``) of least ``cost_fp·FP + cost_fn·FN``.

    Args:
        y_true (array[N]): 0/1 labels, N >= 1 (one class is allowed).
        scores (array[N]): finite real scores.
        cost_fp, cost_fn: finite costs ``>= 0`` of one false positive and one false negative.

    Returns:
        ``(threshold, cost)``. The candidates are the distinct scores and ``+inf`` (predict no row
        positive); every other threshold gives the same predictions as one of them. Among equal
        costs the smallest threshold wins (so ``cost_fp = 0`` gives ``min(scores)``: everything
        positive). Cumulative counts of the rows and positives below each candidate, from sorts
        and a binary search: O(N log N).
    """
    positive, score = _pair(y_true, scores, "scores")
    for name, cost in (("cost_fp", cost_fp), ("cost_fn", cost_fn)):
        if not (np.isfinite(cost) and cost >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {cost!r}")
    n, n_pos = len(score), int(positive.sum())
    values, rows_below, positives_below = _counts_below(positive, score)
    candidates = np.r_[values, np.inf]  # (G + 1,) ascending; +inf: every row is below it
    false_negatives = np.r_[positives_below, n_pos]  # (G + 1,) positives with score < t
    negatives_below = np.r_[rows_below, n] - false_negatives
    false_positives = (n - n_pos) - negatives_below  # (G + 1,) negatives with score >= t
    costs = cost_fp * false_positives.astype(np.float64) + cost_fn * false_negatives.astype(np.float64)
    best = int(np.argmin(costs))  # the first minimum: the smallest threshold
    return float(candidates[best]), float(costs[best])


def precision_at_k(y_true: ArrayLike, scores: ArrayLike, k: int) -> float:
    """Fraction of positives among the ``k`` rows of highest score.

    Args:
        y_true (array[N]): 0/1 labels.
        scores (array[N]): finite real scores.
        k: ``1 <= k <= N``.

    Ties at the k-th score are broken by row index: the rows are ordered by decreasing score and,
    among equal scores, increasing index (a stable sort), and the first ``k`` are taken. So the
    result is deterministic but depends on row order when ties straddle position ``k``.
    """
    positive, score = _pair(y_true, scores, "scores")
    if isinstance(k, bool) or not 1 <= operator.index(k) <= len(score):
        raise ValueError(f"k must be an integer in [1, {len(score)}], got {k!r}")
    top = np.argsort(-score, kind="stable")[:k]
    return float(np.count_nonzero(positive[top]) / k)
