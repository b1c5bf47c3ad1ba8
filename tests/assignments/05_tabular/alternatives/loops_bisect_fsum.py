"""Different but correct: pure-Python style (dicts, sorted(), bisect, math.fsum, exact integer counts); bincount/cumsum only where 1e6 rows demand it (roc_auc)."""

# %% grade_id=group-time-split-answer
import numpy as np


def group_time_split(groups, times, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train_idx, test_idx)``: the last-starting groups, about ``test_fraction`` of the rows, are test."""
    if not (0 < test_fraction < 1):  # also rejects NaN
        raise ValueError("test_fraction must be strictly between 0 and 1")
    g_list = list(groups)
    t_list = list(times)
    if len(g_list) != len(t_list):
        raise ValueError("groups and times must have the same length")
    start = {}
    first = {}
    rows = {}
    for i, (g, t) in enumerate(zip(g_list, t_list, strict=False)):
        if g not in start:
            start[g] = t
            first[g] = i
            rows[g] = [i]
        else:
            if t < start[g]:
                start[g] = t
            rows[g].append(i)
    n_groups = len(start)
    if n_groups < 2:
        raise ValueError("need at least 2 distinct groups")
    order = sorted(start, key=lambda g: (start[g], first[g]))
    n = len(g_list)
    target = test_fraction * n
    best_c, best_diff, acc = None, None, 0
    for c in range(1, n_groups):
        acc += len(rows[order[n_groups - c]])
        diff = abs(acc - target)
        if best_diff is None or diff < best_diff:  # strict: ties keep the smaller c
            best_c, best_diff = c, diff
    test_rows = set()
    for g in order[n_groups - best_c :]:
        test_rows.update(rows[g])
    train = [i for i in range(n) if i not in test_rows]
    test = sorted(test_rows)
    return np.array(train, dtype=np.int64), np.array(test, dtype=np.int64)


# %% grade_id=target-encode-answer
import math

import numpy as np


def target_encode_oof(categories, y, folds, smooth: float = 10.0) -> np.ndarray:
    """Each row's category encoded by the smoothed target mean of the other folds' rows (float64, length N)."""
    if not (smooth >= 0):
        raise ValueError("smooth must be >= 0")
    cats = list(categories)
    ys = [float(v) for v in y]
    if len(cats) != len(ys):
        raise ValueError("categories and y must have the same length")
    out = np.full(len(cats), np.nan, dtype=np.float64)
    for train_idx, test_idx in folds:
        sums: dict = {}
        counts: dict = {}
        train_list = [int(i) for i in train_idx]
        for i in train_list:
            c = cats[i]
            sums.setdefault(c, []).append(ys[i])
            counts[c] = counts.get(c, 0) + 1
        prior = math.fsum(ys[i] for i in train_list) / len(train_list)
        enc = {c: (math.fsum(v) + smooth * prior) / (counts[c] + smooth) for c, v in sums.items()}
        for i in test_idx:
            i = int(i)
            out[i] = enc.get(cats[i], prior)
    return out


# %% grade_id=gini-split-answer
import numpy as np


def best_gini_split(x, y) -> tuple[float, float]:
    """``(threshold, weighted Gini impurity)`` of the best split ``x <= threshold`` of one feature."""
    xs = np.asarray(x, dtype=np.float64).tolist()
    ys = np.asarray(y).tolist()
    n = len(xs)
    if n != len(ys):
        raise ValueError("x and y must have the same length")
    order = sorted(range(n), key=xs.__getitem__)
    if n < 2 or xs[order[0]] == xs[order[-1]]:
        raise ValueError("x needs at least two distinct values")
    right: dict = {}
    for v in ys:
        right[v] = right.get(v, 0) + 1
    left: dict = {}
    sq_left = 0
    sq_right = sum(c * c for c in right.values())
    cands = []  # (threshold, impurity), thresholds increasing
    for k in range(n - 1):
        lab = ys[order[k]]
        cl = left.get(lab, 0)
        cr = right[lab]
        sq_left += 2 * cl + 1
        sq_right -= 2 * cr - 1
        left[lab] = cl + 1
        right[lab] = cr - 1
        a, b = xs[order[k]], xs[order[k + 1]]
        if a < b:
            n_left = k + 1
            n_right = n - n_left
            imp = (n - sq_left / n_left - sq_right / n_right) / n
            cands.append(((a + b) / 2, imp))
    best = min(imp for _, imp in cands)
    for t, imp in cands:
        if imp - best < 1e-12:
            return float(t), float(imp)
    raise AssertionError("unreachable")


# %% grade_id=boosting-answer
import numpy as np
from sklearn.tree import DecisionTreeRegressor


def boosted_predictions(
    X_train, y_train, X_test, n_estimators: int, learning_rate: float, max_depth: int
) -> np.ndarray:
    """Squared-loss gradient boosting of ``n_estimators`` trees; its predictions at ``X_test`` (float64)."""
    if n_estimators < 0:
        raise ValueError("n_estimators must be >= 0")
    if not (learning_rate > 0):
        raise ValueError("learning_rate must be > 0")
    X = np.array(X_train, dtype=np.float64)
    y = np.array(y_train, dtype=np.float64)
    Xt = np.array(X_test, dtype=np.float64)
    f0 = y.mean()
    train_pred = np.full(y.shape[0], f0)
    test_pred = np.full(Xt.shape[0], f0)
    rng = np.random.RandomState(0)
    for _ in range(n_estimators):
        tree = DecisionTreeRegressor(max_depth=max_depth, random_state=rng)
        tree.fit(X, y - train_pred)
        train_pred = train_pred + learning_rate * tree.predict(X)
        test_pred = test_pred + learning_rate * tree.predict(Xt)
    return test_pred.astype(np.float64)


# %% grade_id=roc-auc-answer
import numpy as np


def roc_auc(y_true, scores) -> float:
    """P(score of a random positive > score of a random negative), ties counted one half."""
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores).ravel()
    if y.shape[0] != s.shape[0]:
        raise ValueError("y_true and scores must have the same length")
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = int(y.shape[0] - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("y_true holds only one class")
    _, inv = np.unique(s, return_inverse=True)
    inv = inv.ravel()
    k = int(inv.max()) + 1
    p_count = np.bincount(inv[pos], minlength=k).astype(np.int64)
    n_count = np.bincount(inv[~pos], minlength=k).astype(np.int64)
    neg_below = np.cumsum(n_count) - n_count
    twice_u = int(np.dot(p_count, 2 * neg_below + n_count))  # exact integer
    return float(twice_u / (2 * n_pos * n_neg))


# %% grade_id=ece-answer
import bisect
import math

import numpy as np


def expected_calibration_error(y_true, probs, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width bins ``(edges[b], edges[b+1]]`` (0 in the first bin)."""
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    ys = [float(v) for v in np.asarray(y_true).ravel()]
    ps = [float(v) for v in np.asarray(probs).ravel()]
    if len(ys) != len(ps):
        raise ValueError("y_true and probs must have the same length")
    if not ps:
        raise ValueError("need at least one row")
    for p in ps:
        if not (0.0 <= p <= 1.0):
            raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0, 1, n_bins + 1).tolist()
    bins_y: list[list[float]] = [[] for _ in range(n_bins)]
    bins_p: list[list[float]] = [[] for _ in range(n_bins)]
    for yi, p in zip(ys, ps, strict=False):
        b = max(bisect.bisect_left(edges, p) - 1, 0)
        bins_y[b].append(yi)
        bins_p[b].append(p)
    n = len(ps)
    total = []
    for by, bp in zip(bins_y, bins_p, strict=False):
        if by:
            nb = len(by)
            total.append(nb / n * abs(math.fsum(by) / nb - math.fsum(bp) / nb))
    return float(math.fsum(total))
