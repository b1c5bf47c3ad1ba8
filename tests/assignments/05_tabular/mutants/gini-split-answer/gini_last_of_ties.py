"""Keeps the last of equally good thresholds (<= instead of <), not the smallest."""

# fails: test-gini-split
# %% grade_id=gini-split-answer
import numpy as np


def best_gini_split(x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    values = np.unique(x)
    if len(values) < 2:
        raise ValueError("constant feature")

    def gini(labels):
        _, counts = np.unique(labels, return_counts=True)
        return 1.0 - np.sum((counts / len(labels)) ** 2)

    best = None
    for t in (values[:-1] + values[1:]) / 2:
        left, right = y[x <= t], y[x > t]
        g = (len(left) * gini(left) + len(right) * gini(right)) / len(y)
        if best is None or g <= best[1] + 1e-12:
            best = (float(t), float(g))
    return best
