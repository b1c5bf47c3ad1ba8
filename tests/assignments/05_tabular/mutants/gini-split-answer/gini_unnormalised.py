"""Wrong: returns n_left*G_left + n_right*G_right without dividing by N (threshold is still right)."""
# fails: test-gini-split

# %% grade_id=gini-split-answer
import numpy as np


def best_gini_split(x, y) -> tuple[float, float]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    if xs[0] == xs[-1]:
        raise ValueError("constant feature")
    classes = np.unique(ys)
    onehot = (ys[:, None] == classes[None, :]).astype(np.float64)
    left = np.cumsum(onehot, axis=0)[:-1]
    right = onehot.sum(axis=0) - left
    n = len(xs)
    nl = np.arange(1, n, dtype=np.float64)
    nr = n - nl
    imp = nl - (left**2).sum(1) / nl + nr - (right**2).sum(1) / nr
    valid = np.flatnonzero(xs[:-1] < xs[1:])
    v = imp[valid]
    i = valid[np.flatnonzero(v - v.min() < 1e-12 * n)[0]]
    return float((xs[i] + xs[i + 1]) / 2), float(imp[i])
