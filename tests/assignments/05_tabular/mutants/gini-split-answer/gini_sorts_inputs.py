"""Wrong: sorts x and y in place (x[:] = x[order]) to save memory, modifying the caller's arrays."""
# fails: test-gini-split

# %% grade_id=gini-split-answer
import numpy as np


def best_gini_split(x, y) -> tuple[float, float]:
    x = np.asarray(x)
    y = np.asarray(y)
    order = np.argsort(x, kind="stable")
    x[:] = x[order]
    y[:] = y[order]
    if x[0] == x[-1]:
        raise ValueError("constant feature")
    classes = np.unique(y)
    onehot = (y[:, None] == classes[None, :]).astype(np.float64)
    left = np.cumsum(onehot, axis=0)[:-1]
    right = onehot.sum(axis=0) - left
    n = len(x)
    nl = np.arange(1, n, dtype=np.float64)
    nr = n - nl
    imp = (nl - (left**2).sum(1) / nl + nr - (right**2).sum(1) / nr) / n
    valid = np.flatnonzero(x[:-1] < x[1:])
    v = imp[valid]
    i = valid[np.flatnonzero(v - v.min() < 1e-12)[0]]
    return float((float(x[i]) + float(x[i + 1])) / 2), float(imp[i])
