"""Wrong: checks `(p < 0).any() or (p > 1).any()`, which lets NaN probabilities through (NaN is not in [0, 1]); the result becomes NaN."""
# fails: test-ece

# %% grade_id=ece-answer
import numpy as np


def expected_calibration_error(y_true, probs, n_bins: int = 10) -> float:
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.searchsorted(edges[1:-1], p, side="left")
    sy = np.bincount(b, weights=y, minlength=n_bins)
    sp = np.bincount(b, weights=p, minlength=n_bins)
    return float(np.abs(sy - sp).sum() / len(p))
