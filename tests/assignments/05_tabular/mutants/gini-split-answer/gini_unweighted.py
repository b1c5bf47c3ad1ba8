"""Adds the two sides' Gini impurities without weighting them by their sizes."""

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
        g = (gini(y[x <= t]) + gini(y[x > t])) / 2
        if best is None or g < best[1] - 1e-12:
            best = (float(t), float(g))
    return best
