"""Wrong: bins with np.digitize (intervals [edges[b], edges[b+1]) ), so a probability exactly on an inner edge goes to the bin ABOVE it."""
# fails: test-ece

# %% grade_id=ece-answer
import numpy as np


def expected_calibration_error(y_true, probs, n_bins: int = 10) -> float:
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.clip(np.digitize(p, edges) - 1, 0, n_bins - 1)
    ece = 0.0
    for k in range(n_bins):
        m = b == k
        if m.any():
            ece += m.sum() / len(p) * abs(y[m].mean() - p[m].mean())
    return float(ece)
