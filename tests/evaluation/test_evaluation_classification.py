"""Tests for mlcraft.evaluation.classification against scikit-learn and float64 loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve  # type: ignore[import-untyped]
from sklearn.metrics import (  # type: ignore[import-untyped]
    average_precision_score,
    brier_score_loss,
    roc_auc_score,
)
from sklearn.metrics import log_loss as sk_log_loss

from mlcraft.classroom.testing import assert_close
from mlcraft.evaluation.classification import (
    average_precision,
    brier_score,
    expected_calibration_error,
    log_loss,
    min_cost_threshold,
    pr_auc,
    precision_at_k,
    reliability_curve,
    roc_auc,
)

TOL = 1e-12  # |ours - reference| allowed on every float64 metric
Case = tuple[NDArray[np.bool_], NDArray[np.float64]]


def _case(seed: int, n: int | None = None) -> Case:
    """Labels with a random positive rate and scores that separate them a little. Seed % 4 picks the
    ties: rounded to 0, 1 or 2 decimals (heavy to light ties) or not rounded (no ties)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400)) if n is None else n
    y = rng.random(n) < rng.uniform(0.05, 0.95)
    y[:2] = [True, False]  # both classes
    scores = rng.normal(size=n) + rng.uniform(0, 2) * y
    if seed % 4 < 3:
        scores = np.round(scores, seed % 4)
    return y, scores


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-x))


SEEDS = list(range(16))


# ---------------------------------------------------------------- roc_auc


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_matches_sklearn(seed: int) -> None:
    y, s = _case(seed)
    assert abs(roc_auc(y, s) - roc_auc_score(y, s)) <= TOL, f"seed {seed}, n {len(y)}"


def test_roc_auc_is_the_pair_probability() -> None:
    """Float64 loop over every (positive, negative) pair: 1 if ranked right, ½ if tied."""
    y, s = _case(3, n=150)
    pos, neg = s[y], s[~y]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    assert abs(roc_auc(y, s) - wins / (len(pos) * len(neg))) <= TOL


def test_roc_auc_100k_heavy_ties_matches_sklearn() -> None:
    rng = np.random.default_rng(7)
    y = rng.random(100_000) < 0.05
    s = rng.integers(0, 20, 100_000) + 3 * y  # 23 distinct scores: almost every row tied
    assert abs(roc_auc(y, s) - roc_auc_score(y, s)) <= TOL


@pytest.mark.parametrize("n", [2, 3, 1000])
def test_roc_auc_all_scores_equal_is_half(n: int) -> None:
    y = np.arange(n) % 2 == 0
    s = np.full(n, 0.3)
    assert roc_auc(y, s) == 0.5
    assert roc_auc_score(y, s) == 0.5


def test_roc_auc_extremes_and_symmetry() -> None:
    y, s = _case(5)
    assert roc_auc(y, s.astype(float) * 0 + y) == 1.0  # a perfect score
    assert abs(roc_auc(y, -s) - (1.0 - roc_auc(y, s))) <= TOL  # reversing the scores
    assert abs(roc_auc(y, np.exp(s)) - roc_auc(y, s)) <= TOL  # only the order matters
    assert abs(roc_auc(y, s + 1e6) - roc_auc(y, s)) <= TOL  # extreme offset keeps the order (ties too)


def test_roc_auc_label_types_agree() -> None:
    y, s = _case(9)
    expected = roc_auc(y, s)
    for labels in (y.astype(np.int64), y.astype(np.int8), y.astype(np.float32), y.tolist(), torch.from_numpy(y)):
        assert roc_auc(labels, s) == expected, type(labels)
    assert roc_auc(y, torch.from_numpy(s).float()) == roc_auc(y, s.astype(np.float32))


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "both classes.*3 positives and 0 negatives"),
        ([0, 0], [0.1, 0.2], "both classes.*0 positives and 2 negatives"),
        ([0, 1, 1], [0.1, 0.2], "same length, got 3 and 2"),
        ([], [], "empty"),
        ([0, 1, 1], [0.1, np.nan, 0.3], r"finite; NaN or inf at positions \[1\]"),
        ([0, 1, 1], [0.1, np.inf, 0.3], r"finite; NaN or inf at positions \[1\]"),
        ([0, 1, 2], [0.1, 0.2, 0.3], r"only 0 and 1, got \[2\]"),
        ([0, 1, -1], [0.1, 0.2, 0.3], r"only 0 and 1, got \[-1\]"),
        ([0.0, 1.0, np.nan], [0.1, 0.2, 0.3], "only 0 and 1"),
        ([0.0, 1.0, 0.5], [0.1, 0.2, 0.3], r"only 0 and 1, got \[0.5\]"),
        (["a", "b", "a"], [0.1, 0.2, 0.3], "bool or numbers, got dtype <U1"),
        ([[0, 1]], [[0.1, 0.2]], r"1-D, got shape \(1, 2\)"),
    ],
)
def test_roc_auc_rejects_bad_input(y: list[object], s: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        roc_auc(y, s)  # type: ignore[arg-type]


# ---------------------------------------------------------------- average precision


@pytest.mark.parametrize("seed", SEEDS)
def test_average_precision_matches_sklearn(seed: int) -> None:
    y, s = _case(seed)
    assert abs(average_precision(y, s) - average_precision_score(y, s)) <= TOL, f"seed {seed}"
    assert pr_auc(y, s) == average_precision(y, s)


def test_average_precision_100k_matches_sklearn() -> None:
    y, s = _case(2, n=100_000)  # rounded to 2 decimals: ties everywhere
    assert abs(average_precision(y, s) - average_precision_score(y, s)) <= TOL


def test_average_precision_ignores_the_order_of_tied_rows() -> None:
    y, s = _case(0)  # rounded to integers
    perm = np.random.default_rng(1).permutation(len(y))
    assert abs(average_precision(y[perm], s[perm]) - average_precision(y, s)) <= TOL
    assert abs(average_precision(y, np.zeros(len(y))) - y.mean()) <= TOL  # one threshold: the base rate


def test_average_precision_one_class() -> None:
    assert average_precision([1, 1, 1], [0.1, 0.5, 0.5]) == 1.0 == average_precision_score([1, 1, 1], [0.1, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"at least one positive.*got 0 of 3"):
        average_precision([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        average_precision([0, 1], [np.nan, 0.2])


# ---------------------------------------------------------------- calibration


def _probs(seed: int, n: int = 500) -> Case:
    """Probabilities with exact 0s, 1s and values on the uniform edges k/10 (edge inclusion)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 2.0, n)
    p[:30] = np.linspace(0.0, 1.0, 11).repeat(3)[:30]  # 0.0, 0.1, ..., 0.9 (as linspace computes them)
    p[30:35] = 1.0
    y = rng.random(n) < p
    return y, p


def _bin_loop(p: float, edges: NDArray[np.float64]) -> int:
    """The stated rule, one row at a time: the first bin whose upper edge is >= p (the last otherwise)."""
    b = 0
    while b < len(edges) - 2 and p > edges[b + 1]:
        b += 1
    return b


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize(("seed", "n_bins"), [(0, 10), (1, 5), (2, 1), (3, 23), (4, 100)])
def test_reliability_curve_matches_sklearn(seed: int, n_bins: int, strategy: str) -> None:
    y, p = _probs(seed)
    curve = reliability_curve(y, p, n_bins, strategy)  # type: ignore[arg-type]
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    filled = curve.counts > 0
    assert_close(curve.observed_frequency[filled], prob_true, rtol=0.0, atol=TOL, msg="observed frequency")
    assert_close(curve.mean_predicted[filled], prob_pred, rtol=0.0, atol=TOL, msg="mean predicted")
    assert np.isnan(curve.mean_predicted[~filled]).all() and np.isnan(curve.observed_frequency[~filled]).all()
    assert curve.counts.sum() == len(p) and curve.edges.shape == (n_bins + 1,)
    bins = np.array([_bin_loop(v, curve.edges) for v in p])
    assert np.array_equal(curve.counts, np.bincount(bins, minlength=n_bins)), "counts vs the per-row rule"


def test_reliability_curve_edges_go_to_the_lower_bin() -> None:
    curve = reliability_curve([0, 1, 1, 0, 1], [0.0, 1.0, 0.5, 0.1, 0.10000001], n_bins=10)
    assert curve.counts.tolist() == [2, 1, 0, 0, 1, 0, 0, 0, 0, 1]  # 0.1 is in [0, 0.1]; 0.5 in (0.4, 0.5]
    assert curve.mean_predicted[0] == 0.05 and curve.observed_frequency[0] == 0.0


def _ece_loop(y: NDArray[np.bool_], p: NDArray[np.float64], edges: NDArray[np.float64]) -> float:
    n_bins = len(edges) - 1
    count, total_p, total_y = [0] * n_bins, [0.0] * n_bins, [0.0] * n_bins
    for label, prob in zip(y.tolist(), p.tolist(), strict=True):
        b = _bin_loop(prob, edges)
        count[b] += 1
        total_p[b] += prob
        total_y[b] += float(label)
    return sum(c / len(p) * abs(total_y[b] / c - total_p[b] / c) for b, c in enumerate(count) if c)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize(("seed", "n_bins"), [(0, 10), (5, 3), (6, 1), (7, 40)])
def test_expected_calibration_error_matches_loop(seed: int, n_bins: int, strategy: str) -> None:
    y, p = _probs(seed)
    edges = reliability_curve(y, p, n_bins, strategy).edges  # type: ignore[arg-type]
    if strategy == "uniform":
        assert np.array_equal(edges, np.linspace(0, 1, n_bins + 1))
    ours = expected_calibration_error(y, p, n_bins, strategy)  # type: ignore[arg-type]
    assert abs(ours - _ece_loop(y, p, edges)) <= TOL


def test_expected_calibration_error_known_values() -> None:
    y = np.array([1, 0, 0, 0] * 25)
    assert expected_calibration_error(y, np.full(100, 0.25)) <= TOL  # calibrated
    assert abs(expected_calibration_error(y, np.full(100, 0.75)) - 0.5) <= TOL  # one bin, off by 0.5
    assert abs(expected_calibration_error([1, 0], [0.0, 1.0]) - 1.0) <= TOL  # worst possible


@pytest.mark.parametrize(
    ("p", "match"),
    [([0.2, 1.5], r"\[0, 1\], got \[1.5\]"), ([-0.1, 0.5], r"\[0, 1\], got \[-0.1\]"), ([0.2, np.nan], "finite")],
)
def test_probability_metrics_reject_bad_probs(p: list[float], match: str) -> None:
    for metric in (expected_calibration_error, reliability_curve, brier_score, log_loss):
        with pytest.raises(ValueError, match=match):
            metric([0, 1], p)


def test_reliability_curve_rejects_bad_bins() -> None:
    with pytest.raises(ValueError, match="n_bins must be an integer >= 1, got 0"):
        reliability_curve([0, 1], [0.2, 0.3], n_bins=0)
    with pytest.raises(ValueError, match="strategy must be 'uniform' or 'quantile', got 'kmeans'"):
        reliability_curve([0, 1], [0.2, 0.3], strategy="kmeans")  # type: ignore[arg-type]


# ---------------------------------------------------------------- brier and log loss


@pytest.mark.parametrize("seed", SEEDS[:8])
def test_brier_and_log_loss_match_sklearn(seed: int) -> None:
    y, s = _case(seed)
    p = _sigmoid(s)
    assert abs(brier_score(y, p) - brier_score_loss(y, p)) <= TOL
    assert abs(log_loss(y, p) - sk_log_loss(y, p)) <= TOL


def test_log_loss_clips_like_sklearn() -> None:
    y = np.array([1, 0, 1, 0, 1])
    p = np.array([0.0, 1.0, 1.0, 0.0, 0.5])  # two confident mistakes, two confident hits
    eps = np.finfo(np.float64).eps
    assert abs(log_loss(y, p) - sk_log_loss(y, p)) <= TOL
    assert abs(log_loss(y, p) - (-2 * math.log(eps) - 2 * math.log(1 - eps) + math.log(2)) / 5) <= TOL
    assert abs(log_loss([1, 1], [0.3, 0.9]) - sk_log_loss([1, 1], [0.3, 0.9], labels=[0, 1])) <= TOL  # one class


# ---------------------------------------------------------------- min-cost threshold


def _min_cost_loop(y: NDArray[np.bool_], s: NDArray[np.float64], cost_fp: float, cost_fn: float) -> tuple[float, float]:
    """Every candidate, ascending; a strictly lower cost replaces the best (so ties keep the smallest)."""
    best = (math.nan, math.inf)
    for t in [*sorted(set(s.tolist())), math.inf]:
        fp = sum(1 for label, score in zip(y, s, strict=True) if score >= t and not label)
        fn = sum(1 for label, score in zip(y, s, strict=True) if score < t and label)
        cost = cost_fp * fp + cost_fn * fn
        if cost < best[1]:
            best = (t, cost)
    return best


COSTS = [(1.0, 1.0), (1.0, 5.0), (7.5, 0.3), (0.0, 1.0), (1.0, 0.0), (0.0, 0.0)]


@pytest.mark.parametrize("costs", COSTS)
@pytest.mark.parametrize("seed", SEEDS[:8])
def test_min_cost_threshold_matches_loop(seed: int, costs: tuple[float, float]) -> None:
    y, s = _case(seed, n=120)
    assert min_cost_threshold(y, s, cost_fp=costs[0], cost_fn=costs[1]) == _min_cost_loop(y, s, *costs)


@pytest.mark.parametrize("costs", COSTS)
@pytest.mark.parametrize("label", [True, False])
def test_min_cost_threshold_one_class(label: bool, costs: tuple[float, float]) -> None:
    y, s = np.full(30, label), np.round(np.random.default_rng(0).normal(size=30), 1)
    ours = min_cost_threshold(y, s, cost_fp=costs[0], cost_fn=costs[1])
    assert ours == _min_cost_loop(y, s, *costs)
    assert ours[1] == 0.0  # one class can always be predicted without error


def test_min_cost_threshold_known_answers() -> None:
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    assert min_cost_threshold(y, s, cost_fp=1, cost_fn=1) == (0.35, 1.0)  # ties 0.8 (one FN): smallest wins
    assert min_cost_threshold(y, s, cost_fp=10, cost_fn=1) == (0.8, 1.0)
    assert min_cost_threshold(y, s, cost_fp=0, cost_fn=1) == (0.1, 0.0)  # everything positive
    assert min_cost_threshold(y, s, cost_fp=1, cost_fn=0) == (0.8, 0.0)  # no FP from 0.8 up: the smallest such
    assert min_cost_threshold([0], [3.0], cost_fp=1, cost_fn=1) == (math.inf, 0.0)  # nothing positive


@pytest.mark.parametrize(
    ("cost_fp", "cost_fn", "match"),
    [(-1.0, 1.0, "cost_fp must be finite and >= 0, got -1.0"), (1.0, math.nan, "cost_fn must be finite.*nan")],
)
def test_min_cost_threshold_rejects_bad_costs(cost_fp: float, cost_fn: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        min_cost_threshold([0, 1], [0.1, 0.2], cost_fp=cost_fp, cost_fn=cost_fn)
    with pytest.raises(ValueError, match="empty"):
        min_cost_threshold([], [], cost_fp=1.0, cost_fn=1.0)


# ---------------------------------------------------------------- precision@k


@pytest.mark.parametrize("seed", SEEDS[:8])
def test_precision_at_k_matches_loop(seed: int) -> None:
    y, s = _case(seed, n=60)
    ranked = sorted(range(len(s)), key=lambda i: (-s[i], i))  # decreasing score, then increasing index
    for k in range(1, len(s) + 1):
        expected = sum(bool(y[i]) for i in ranked[:k]) / k
        assert precision_at_k(y, s, k) == expected, f"seed {seed}, k {k}"


def test_precision_at_k_breaks_ties_by_index() -> None:
    s = [0.5, 0.5, 0.5, 0.9]
    assert precision_at_k([1, 0, 0, 0], s, 2) == 0.5  # row 3 (0.9), then row 0: the lowest index of the tie
    assert precision_at_k([0, 0, 1, 0], s, 2) == 0.0  # row 2 is tied with row 0 but comes later
    assert precision_at_k([0, 0, 1, 0], s, 4) == 0.25


@pytest.mark.parametrize("k", [0, 4, -1])
def test_precision_at_k_rejects_bad_k(k: int) -> None:
    with pytest.raises(ValueError, match=rf"k must be an integer in \[1, 3\], got {k}"):
        precision_at_k([0, 1, 1], [0.1, 0.2, 0.3], k)
