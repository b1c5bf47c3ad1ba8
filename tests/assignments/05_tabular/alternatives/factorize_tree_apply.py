"""Different but correct: vectorised NumPy/pandas/scipy (np.unique+argsort stable, bincount, occurrence-rank cumsums, tree.apply leaf values, scipy.stats.rankdata, searchsorted)."""

# %% grade_id=group-time-split-answer
import numpy as np
import pandas as pd


def group_time_split(groups, times, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train_idx, test_idx)``: the last-starting groups, about ``test_fraction`` of the rows, are test."""
    tf = float(test_fraction)
    if not (0.0 < tf < 1.0):
        raise ValueError("test_fraction must be strictly between 0 and 1")
    g = np.asarray(groups)
    t = np.asarray(times)
    if g.shape[0] != t.shape[0]:
        raise ValueError("groups and times must have the same length")
    codes, uniques = pd.factorize(g)  # codes in order of first appearance
    n_groups = len(uniques)
    if n_groups < 2:
        raise ValueError("need at least 2 distinct groups")
    starts = pd.Series(t).groupby(codes).min().to_numpy()  # indexed by code 0..G-1
    order = np.argsort(starts, kind="stable")  # stable: equal starts keep first-appearance order
    sizes = np.bincount(codes, minlength=n_groups)[order]
    tail = np.cumsum(sizes[::-1])[: n_groups - 1]  # rows in the last c groups, c = 1..G-1
    c = int(np.argmin(np.abs(tail - tf * g.shape[0]))) + 1  # argmin: first, i.e. smallest c
    is_test = np.zeros(n_groups, dtype=bool)
    is_test[order[n_groups - c :]] = True
    mask = is_test[codes]
    return np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)


# %% grade_id=target-encode-answer
import numpy as np


def target_encode_oof(categories, y, folds, smooth: float = 10.0) -> np.ndarray:
    """Each row's category encoded by the smoothed target mean of the other folds' rows (float64, length N)."""
    if smooth < 0 or np.isnan(smooth):
        raise ValueError("smooth must be >= 0")
    _, codes = np.unique(np.asarray(categories), return_inverse=True)
    codes = codes.ravel()
    k = int(codes.max()) + 1 if codes.size else 0
    yf = np.asarray(y).astype(np.float64)  # astype always copies
    out = np.full(codes.shape[0], np.nan)
    for train_idx, test_idx in folds:
        tr = np.asarray(train_idx, dtype=np.intp)
        te = np.asarray(test_idx, dtype=np.intp)
        sums = np.zeros(k)
        np.add.at(sums, codes[tr], yf[tr])
        cnts = np.bincount(codes[tr], minlength=k)
        prior = yf[tr].mean()
        enc = np.full(k, prior)
        seen = cnts > 0
        enc[seen] = (sums[seen] + smooth * prior) / (cnts[seen] + smooth)
        out[te] = enc[codes[te]]
    return out


# %% grade_id=gini-split-answer
import numpy as np


def best_gini_split(x, y) -> tuple[float, float]:
    """``(threshold, weighted Gini impurity)`` of the best split ``x <= threshold`` of one feature."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError("x and y must have the same length")
    order = np.argsort(x, kind="stable")
    xs = x[order]
    if n < 2 or xs[0] == xs[-1]:
        raise ValueError("x needs at least two distinct values")
    _, lab = np.unique(y[order], return_inverse=True)
    lab = lab.ravel()
    totals = np.bincount(lab)
    # occ[j]: how many earlier rows (in x order) share row j's label
    by_lab = np.argsort(lab, kind="stable")
    block_start = np.concatenate(([0], np.cumsum(totals)[:-1]))
    occ = np.empty(n, dtype=np.int64)
    occ[by_lab] = np.arange(n) - block_start[lab[by_lab]]
    # sum of squared class counts on each side after moving rows 0..i to the left
    sq_left = np.cumsum(2 * occ + 1)
    sq_right = int(np.dot(totals, totals)) + np.cumsum(1 - 2 * (totals[lab] - occ))
    pos = np.flatnonzero(xs[:-1] < xs[1:])  # split after sorted position pos
    n_left = (pos + 1).astype(np.float64)
    n_right = n - n_left
    imp = (n - sq_left[pos] / n_left - sq_right[pos] / n_right) / n
    best = np.flatnonzero(imp - imp.min() < 1e-12)[0]  # smallest threshold among the (near-)ties
    p = pos[best]
    return float(xs[p] / 2 + xs[p + 1] / 2), float(imp[best])


# %% grade_id=boosting-answer
import numpy as np
from sklearn.tree import DecisionTreeRegressor


def boosted_predictions(
    X_train, y_train, X_test, n_estimators: int, learning_rate: float, max_depth: int
) -> np.ndarray:
    """Squared-loss gradient boosting of ``n_estimators`` trees; its predictions at ``X_test`` (float64)."""
    if n_estimators < 0 or learning_rate <= 0 or np.isnan(learning_rate):
        raise ValueError("need n_estimators >= 0 and learning_rate > 0")
    X = np.asarray(X_train)
    y = np.asarray(y_train).astype(np.float64)
    Xt = np.asarray(X_test)
    rng = np.random.RandomState(seed=0)
    F = np.full(y.shape[0], np.mean(y))
    trees = []
    for _ in range(n_estimators):
        tree = DecisionTreeRegressor(max_depth=max_depth, random_state=rng).fit(X, y - F)
        leaf_values = tree.tree_.value[:, 0, 0]
        F += learning_rate * leaf_values[tree.apply(X)]
        trees.append(tree)
    out = np.full(Xt.shape[0], np.mean(y), dtype=np.float64)
    for tree in trees:
        out += learning_rate * tree.tree_.value[tree.apply(Xt), 0, 0]
    return out


# %% grade_id=roc-auc-answer
import numpy as np
from scipy.stats import rankdata


def roc_auc(y_true, scores) -> float:
    """P(score of a random positive > score of a random negative), ties counted one half."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores)
    if y.shape != s.shape:
        raise ValueError("y_true and scores must have the same length")
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("only one class in y_true")
    r_pos = rankdata(s, method="average")[y].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# %% grade_id=ece-answer
import numpy as np


def expected_calibration_error(y_true, probs, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width bins ``(edges[b], edges[b+1]]`` (0 in the first bin)."""
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if y.shape != p.shape or y.size == 0:
        raise ValueError("y_true and probs must be non-empty and of the same length")
    if not np.all((p >= 0) & (p <= 1)):  # NaN fails both comparisons
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.searchsorted(edges[1:-1], p, side="left")  # inner edge -> bin below; 0 -> bin 0
    cnt = np.bincount(b, minlength=n_bins)
    sum_y = np.bincount(b, weights=y, minlength=n_bins)
    sum_p = np.bincount(b, weights=p, minlength=n_bins)
    used = cnt > 0
    # n_b / N * |sum_y/n_b - sum_p/n_b| == |sum_y - sum_p| / N
    return float(np.abs(sum_y[used] - sum_p[used]).sum() / y.size)
