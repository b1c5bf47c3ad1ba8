"""Tests every feature at level ``alpha`` instead of ``alpha / F``: with many features, stable ones
are flagged by chance (here a column with p about 0.003 among six)."""

# fails: test-drift-flags
# %% grade_id=drift-flags-answer
import numpy as np
import scipy.stats


def drift_flags(reference, live, names, psi_threshold: float = 0.2, alpha: float = 0.01) -> list[str]:
    """Names of the drifted features."""
    ref, cur = np.asarray(reference), np.asarray(live)
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[1] != cur.shape[1]:
        raise ValueError(f"reference and live must be (N, F) and (M, F), got {ref.shape} and {cur.shape}")
    n_features = ref.shape[1]
    if len(names) != n_features:
        raise ValueError(f"{len(names)} names for {n_features} features")
    flagged = []
    for j, name in enumerate(names):
        value = psi(ref[:, j], cur[:, j])
        pvalue = scipy.stats.ks_2samp(ref[:, j], cur[:, j]).pvalue
        if value >= psi_threshold or pvalue < alpha:
            flagged.append(name)
    return flagged
