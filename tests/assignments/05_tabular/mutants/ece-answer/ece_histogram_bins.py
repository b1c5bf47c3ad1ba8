"""Bins with np.histogram, whose bins are closed on the left: a probability on an inner edge goes to
the bin above it."""

# fails: test-ece
# %% grade_id=ece-answer
import numpy as np


def expected_calibration_error(y_true, probs, n_bins=10):
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be in [0, 1]")
    edges = np.linspace(0, 1, n_bins + 1)
    sum_y, _ = np.histogram(p, edges, weights=y)
    sum_p, _ = np.histogram(p, edges, weights=p)
    return float(np.sum(np.abs(sum_y - sum_p)) / len(p))
