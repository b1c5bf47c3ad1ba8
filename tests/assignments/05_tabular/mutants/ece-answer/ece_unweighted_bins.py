"""Averages the gaps over the non-empty bins without weighting them by their share of the rows."""

# fails: test-ece
# %% grade_id=ece-answer
import numpy as np


def expected_calibration_error(y_true, probs, n_bins=10):
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be in [0, 1]")
    bins = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], p, side="left")
    gaps = [abs(y[bins == b].mean() - p[bins == b].mean()) for b in np.unique(bins)]
    return float(np.mean(gaps))
