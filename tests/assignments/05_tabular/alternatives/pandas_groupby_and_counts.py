"""Different but correct: pandas groupby for the split and the encoding, np.add.at class counts
for the Gini scan, a boosting loop that refits on a copy, AUC from counts of negatives below each
distinct score, and ECE bins from np.digitize(..., right=True)."""

# %% grade_id=group-time-split-answer
import numpy as np
import pandas as pd


def group_time_split(groups, times, test_fraction):
    if not (0.0 < test_fraction < 1.0):
        raise ValueError("test_fraction must be strictly between 0 and 1")
    frame = pd.DataFrame({"g": np.asarray(groups), "t": np.asarray(times)}) if len(groups) == len(times) else None
    if frame is None:
        raise ValueError("groups and times must have equal lengths")
    frame["row"] = np.arange(len(frame))
    per_group = frame.groupby("g", sort=False).agg(start=("t", "min"), first=("row", "min"), n=("row", "size"))
    if len(per_group) < 2:
        raise ValueError("at least two groups are needed")
    per_group = per_group.sort_values(["start", "first"], kind="stable")
    tail_rows = per_group["n"].to_numpy()[::-1].cumsum()[:-1]
    distance = np.abs(tail_rows - test_fraction * len(frame))
    c = int(np.flatnonzero(distance == distance.min())[0]) + 1
    test_groups = per_group.index[-c:]
    is_test = frame["g"].isin(test_groups).to_numpy()
    return np.nonzero(~is_test)[0].astype(np.int64), np.nonzero(is_test)[0].astype(np.int64)


# %% grade_id=target-encode-answer
import numpy as np
import pandas as pd


def target_encode_oof(categories, y, folds, smooth=10.0):
    if smooth < 0:
        raise ValueError("smooth cannot be negative")
    cats = pd.Series(np.asarray(categories))
    target = pd.Series(np.asarray(y, dtype=np.float64))
    result = pd.Series(np.nan, index=cats.index)
    for train, test in folds:
        train, test = np.asarray(train), np.asarray(test)
        prior = target.iloc[train].mean()
        stats = target.iloc[train].groupby(cats.iloc[train].to_numpy()).agg(["sum", "count"])
        encoding = (stats["sum"] + smooth * prior) / (stats["count"] + smooth)
        result.iloc[test] = cats.iloc[test].map(encoding).fillna(prior).to_numpy()
    return result.to_numpy(dtype=np.float64)


# %% grade_id=gini-split-answer
import numpy as np


def best_gini_split(x, y):
    xs = np.asarray(x).astype(np.float64)
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    distinct = np.unique(xs)
    if distinct.size < 2:
        raise ValueError("nothing to split: x is constant")
    position = np.searchsorted(distinct, xs)  # index of each row's value among the distinct values
    counts = np.zeros((distinct.size, classes.size))
    np.add.at(counts, (position, codes), 1)
    left = counts.cumsum(axis=0)[:-1]  # rows with x <= distinct[i]
    right = counts.sum(axis=0) - left
    nl, nr = left.sum(axis=1), right.sum(axis=1)
    weighted = (nl - (left**2).sum(axis=1) / nl) + (nr - (right**2).sum(axis=1) / nr)
    impurity = weighted / xs.size
    i = int(np.argmax(impurity <= impurity.min() + 1e-12))
    return float((distinct[i] + distinct[i + 1]) / 2), float(impurity[i])


# %% grade_id=boosting-answer
import numpy as np
from sklearn.tree import DecisionTreeRegressor


def boosted_predictions(X_train, y_train, X_test, n_estimators, learning_rate, max_depth):
    if n_estimators < 0 or learning_rate <= 0:
        raise ValueError(f"need n_estimators >= 0 and learning_rate > 0, got {n_estimators}, {learning_rate}")
    X_train, X_test = np.array(X_train), np.array(X_test)
    y = np.array(y_train, dtype=np.float64)
    state = np.random.RandomState(0)
    pred_train = np.zeros_like(y) + y.mean()
    pred_test = np.zeros(len(X_test)) + y.mean()
    for _ in range(n_estimators):
        residual = y - pred_train
        h = DecisionTreeRegressor(max_depth=max_depth, random_state=state).fit(X_train, residual)
        pred_train += learning_rate * h.predict(X_train)
        pred_test += learning_rate * h.predict(X_test)
    return pred_test


# %% grade_id=roc-auc-answer
import numpy as np


def roc_auc(y_true, scores):
    labels = np.asarray(y_true)
    s = np.asarray(scores).astype(np.float64)
    if labels.shape[0] != s.shape[0]:
        raise ValueError("length mismatch")
    pos = labels.astype(bool)
    if pos.all() or not pos.any():
        raise ValueError("y_true has one class only")
    values, codes = np.unique(s, return_inverse=True)
    neg_at = np.bincount(codes[~pos], minlength=values.size).astype(np.float64)
    pos_at = np.bincount(codes[pos], minlength=values.size).astype(np.float64)
    neg_below = np.concatenate(([0.0], np.cumsum(neg_at)[:-1]))
    wins = np.sum(pos_at * neg_below) + 0.5 * np.sum(pos_at * neg_at)
    return float(wins / (pos_at.sum() * neg_at.sum()))


# %% grade_id=ece-answer
import numpy as np


def expected_calibration_error(y_true, probs, n_bins=10):
    if not n_bins >= 1:
        raise ValueError("n_bins must be >= 1")
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.float64)
    if ((p < 0.0) | (p > 1.0) | np.isnan(p)).any():
        raise ValueError("each probability must lie in [0, 1]")
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bins = np.digitize(p, inner, right=True)
    n = np.bincount(bins, minlength=n_bins)
    mean_y = np.bincount(bins, weights=y, minlength=n_bins) / np.maximum(n, 1)
    mean_p = np.bincount(bins, weights=p, minlength=n_bins) / np.maximum(n, 1)
    return float(np.sum(n / p.size * np.abs(mean_y - mean_p)))
