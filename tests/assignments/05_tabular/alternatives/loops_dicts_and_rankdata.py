"""Different but correct: Python dictionaries and loops instead of np.unique tricks, a running count
of classes for the Gini scan, trees kept in a list and summed at the end, AUC from
scipy.stats.rankdata, and ECE bins from ceil(p * n_bins) - 1 (equal to the statement's edges
wherever an edge is exact in binary)."""

# %% grade_id=group-time-split-answer
import numpy as np


def group_time_split(groups, times, test_fraction):
    groups, times = list(np.asarray(groups).tolist()), np.asarray(times)
    if not (test_fraction > 0 and test_fraction < 1):  # NaN fails both
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if len(groups) != len(times):
        raise ValueError("groups and times differ in length")
    start, first, rows = {}, {}, {}
    for i, g in enumerate(groups):
        if g not in first:
            first[g], start[g], rows[g] = i, times[i], []
        elif times[i] < start[g]:
            start[g] = times[i]
        rows[g].append(i)
    if len(first) < 2:
        raise ValueError("need at least two groups")
    ordered = sorted(first, key=lambda g: (start[g], first[g]))
    target = test_fraction * len(groups)
    best_c, best_gap, total = None, None, 0
    for c in range(1, len(ordered)):
        total += len(rows[ordered[-c]])
        gap = abs(total - target)
        if best_gap is None or gap < best_gap:
            best_c, best_gap = c, gap
    test_groups = set(ordered[-best_c:])
    test = sorted(i for g in test_groups for i in rows[g])
    train = sorted(set(range(len(groups))) - set(test))
    return np.array(train, dtype=np.int64), np.array(test, dtype=np.int64)


# %% grade_id=target-encode-answer
import numpy as np


def target_encode_oof(categories, y, folds, smooth=10.0):
    if smooth < 0:
        raise ValueError("smooth must be non-negative")
    cats = np.asarray(categories).tolist()
    y = [float(v) for v in np.asarray(y)]
    out = np.zeros(len(y))
    for train, test in folds:
        train = list(np.asarray(train).tolist())
        prior = sum(y[i] for i in train) / len(train)
        sums, counts = {}, {}
        for i in train:
            sums[cats[i]] = sums.get(cats[i], 0.0) + y[i]
            counts[cats[i]] = counts.get(cats[i], 0) + 1
        for i in np.asarray(test).tolist():
            c = cats[i]
            out[i] = (sums[c] + smooth * prior) / (counts[c] + smooth) if c in counts else prior
    return out


# %% grade_id=gini-split-answer
import numpy as np


def best_gini_split(x, y):
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(y).tolist()
    order = np.argsort(x, kind="mergesort")
    classes = sorted(set(labels))
    total = {k: 0 for k in classes}
    for v in labels:
        total[v] += 1
    left = {k: 0 for k in classes}
    n = len(labels)
    best = None
    for pos in range(n - 1):
        left[labels[order[pos]]] += 1
        a, b = x[order[pos]], x[order[pos + 1]]
        if a == b:
            continue
        nl, nr = pos + 1, n - pos - 1
        gl = 1.0 - sum((left[k] / nl) ** 2 for k in classes)
        gr = 1.0 - sum(((total[k] - left[k]) / nr) ** 2 for k in classes)
        g = (nl * gl + nr * gr) / n
        if best is None or g < best[1] - 1e-12:
            best = (float((a + b) / 2), float(g))
    if best is None:
        raise ValueError("x has a single distinct value")
    return best


# %% grade_id=boosting-answer
import numpy as np
from sklearn.tree import DecisionTreeRegressor


def boosted_predictions(X_train, y_train, X_test, n_estimators, learning_rate, max_depth):
    if n_estimators < 0:
        raise ValueError("n_estimators must be >= 0")
    if not learning_rate > 0:
        raise ValueError("learning_rate must be > 0")
    y = np.asarray(y_train).astype(np.float64)
    base = float(np.mean(y))
    rng = np.random.RandomState(0)
    trees = []
    fitted = np.full(y.shape, base)
    for _ in range(n_estimators):
        tree = DecisionTreeRegressor(max_depth=max_depth, random_state=rng)
        tree.fit(X_train, y - fitted)
        fitted += learning_rate * tree.predict(X_train)
        trees.append(tree)
    out = np.full(np.asarray(X_test).shape[0], base)
    for tree in trees:
        out += learning_rate * tree.predict(X_test)
    return out


# %% grade_id=roc-auc-answer
import numpy as np
from scipy.stats import rankdata


def roc_auc(y_true, scores):
    y = np.asarray(y_true) == 1
    s = np.asarray(scores)
    if y.shape != s.shape:
        raise ValueError("y_true and scores must have the same length")
    n_pos = np.count_nonzero(y)
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("need both classes")
    ranks = rankdata(s.astype(np.float64), method="average")
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / n_pos / n_neg)


# %% grade_id=ece-answer
import numpy as np


def expected_calibration_error(y_true, probs, n_bins=10):
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    y = np.asarray(y_true).astype(np.float64)
    p = np.asarray(probs).astype(np.float64)
    if np.isnan(p).any() or p.min() < 0 or p.max() > 1:
        raise ValueError("probabilities outside [0, 1]")
    bins = np.clip(np.ceil(p * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(ece)
