"""Category statistics out of fold, but the prior is the mean of every row (including the fold's test rows)."""

# fails: test-target-encode
# %% grade_id=target-encode-answer
import numpy as np


def target_encode_oof(categories, y, folds, smooth=10.0):
    if smooth < 0:
        raise ValueError("smooth must be >= 0")
    _, codes = np.unique(np.asarray(categories), return_inverse=True)
    y = np.asarray(y, dtype=np.float64)
    prior = y.mean()
    k = codes.max() + 1
    out = np.empty(len(y))
    for train, test in folds:
        counts = np.bincount(codes[train], minlength=k)
        sums = np.bincount(codes[train], weights=y[train], minlength=k)
        enc = np.where(counts > 0, (sums + smooth * prior) / np.maximum(counts + smooth, 1e-300), prior)
        out[test] = enc[codes[test]]
    return out
