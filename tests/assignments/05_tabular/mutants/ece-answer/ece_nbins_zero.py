"""Wrong: no n_bins check; n_bins=0 or -1 silently returns 0.0 (linspace(0, 1, 1) and an empty loop) instead of raising ValueError."""
# fails: test-ece

# %% grade_id=ece-answer
import numpy as np


def expected_calibration_error(y_true, probs, n_bins: int = 10) -> float:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for k in range(n_bins):
        m = (p > edges[k]) & (p <= edges[k + 1])
        if k == 0:
            m |= p == 0
        if m.any():
            ece += m.mean() * abs(y[m].mean() - p[m].mean())
    return float(ece)
