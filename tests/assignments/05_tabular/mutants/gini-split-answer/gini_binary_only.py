"""Wrong: assumes two classes 0/1 (counts positives with cumsum(y)), so labels like {0,1,2} or {-1,2,5} give wrong impurities."""
# fails: test-gini-split

# %% grade_id=gini-split-answer
import numpy as np


def best_gini_split(x, y) -> tuple[float, float]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    if xs[0] == xs[-1]:
        raise ValueError("constant feature")
    n = len(xs)
    pos_left = np.cumsum(ys)[:-1]
    nl = np.arange(1, n, dtype=np.float64)
    nr = n - nl
    pos_right = ys.sum() - pos_left
    pl, pr = pos_left / nl, pos_right / nr
    imp = (nl * 2 * pl * (1 - pl) + nr * 2 * pr * (1 - pr)) / n
    valid = np.flatnonzero(xs[:-1] < xs[1:])
    v = imp[valid]
    i = valid[np.flatnonzero(v - v.min() < 1e-12)[0]]
    return float((xs[i] + xs[i + 1]) / 2), float(imp[i])
