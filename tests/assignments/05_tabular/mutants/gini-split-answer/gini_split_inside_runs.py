"""Wrong: evaluates a split after EVERY sorted position (not only between distinct values), so a run of equal x values can be cut in two by position; threshold then equals that value."""
# fails: test-gini-split

# %% grade_id=gini-split-answer
import numpy as np


def best_gini_split(x, y) -> tuple[float, float]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if np.unique(x).size < 2:
        raise ValueError("constant feature")
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    classes = np.unique(ys)
    onehot = (ys[:, None] == classes[None, :]).astype(np.float64)
    left = np.cumsum(onehot, axis=0)[:-1]
    right = onehot.sum(axis=0) - left
    n = len(xs)
    nl = np.arange(1, n, dtype=np.float64)
    nr = n - nl
    imp = (nl - (left**2).sum(1) / nl + nr - (right**2).sum(1) / nr) / n
    best = np.flatnonzero(imp - imp.min() < 1e-12)[0]
    return float((xs[best] + xs[best + 1]) / 2), float(imp[best])
