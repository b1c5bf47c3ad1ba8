"""Applies the formula to categories absent from a fold's training rows too: with smooth=0 that is 0/0 = NaN."""

# fails: test-target-encode
# %% grade_id=target-encode-answer
import numpy as np


def target_encode_oof(categories, y, folds, smooth=10.0):
    if smooth < 0:
        raise ValueError("smooth must be >= 0")
    _, codes = np.unique(np.asarray(categories), return_inverse=True)
    y = np.asarray(y, dtype=np.float64)
    k = codes.max() + 1
    out = np.empty(len(y))
    for train, test in folds:
        prior = y[train].mean()
        counts = np.bincount(codes[train], minlength=k)
        sums = np.bincount(codes[train], weights=y[train], minlength=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            enc = (sums + smooth * prior) / (counts + smooth)
        out[test] = enc[codes[test]]
    return out
