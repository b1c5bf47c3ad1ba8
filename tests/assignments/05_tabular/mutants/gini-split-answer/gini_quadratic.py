"""Wrong: recounts both sides with boolean masks for every candidate threshold (O(N * distinct values)): correct answers but far too slow for N = 100 000."""
# fails: test-gini-split

# %% grade_id=gini-split-answer
import itertools

import numpy as np


def best_gini_split(x, y) -> tuple[float, float]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    values = np.unique(x)
    if values.size < 2:
        raise ValueError("constant feature")
    classes = np.unique(y)

    def gini(labels):
        p = np.array([(labels == k).mean() for k in classes])
        return 1.0 - (p**2).sum()

    best_t, best_g = None, np.inf
    for a, b in itertools.pairwise(values):
        t = (a + b) / 2
        left = y[x <= t]
        right = y[x > t]
        g = (len(left) * gini(left) + len(right) * gini(right)) / len(y)
        if g < best_g - 1e-12:
            best_t, best_g = t, g
    return float(best_t), float(best_g)
