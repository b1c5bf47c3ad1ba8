"""Encodes every row with statistics of all rows: the row's own label leaks into its feature."""

# fails: test-target-encode
# %% grade_id=target-encode-answer
import numpy as np


def target_encode_oof(categories, y, folds, smooth=10.0):
    if smooth < 0:
        raise ValueError("smooth must be >= 0")
    _, codes = np.unique(np.asarray(categories), return_inverse=True)
    y = np.asarray(y, dtype=np.float64)
    prior = y.mean()
    counts = np.bincount(codes)
    sums = np.bincount(codes, weights=y)
    return ((sums + smooth * prior) / (counts + smooth))[codes]
