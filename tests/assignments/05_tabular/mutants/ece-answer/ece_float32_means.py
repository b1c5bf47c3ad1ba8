"""Wrong: keeps float32 probabilities as float32, so the bin means are accumulated in float32 (error ~1e-8, not 1e-12)."""
# fails: test-ece

# %% grade_id=ece-answer
import numpy as np


def expected_calibration_error(y_true, probs, n_bins: int = 10) -> float:
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    y = np.asarray(y_true)
    p = np.asarray(probs)
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.searchsorted(edges[1:-1], p, side="left")
    ece = 0.0
    for k in range(n_bins):
        m = b == k
        if m.any():
            ece += m.sum() / len(p) * abs(y[m].astype(p.dtype).mean() - p[m].mean())
    return float(ece)
