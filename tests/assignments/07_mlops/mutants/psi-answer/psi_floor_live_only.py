"""Floors the live fractions only, reasoning that quantile bins are never empty in the reference:
they are, for a constant reference (bin 0 below its single edge), and PSI becomes infinite."""

# fails: test-psi
# %% grade_id=psi-answer
import numpy as np


def psi(reference, live, bins: int = 10, floor: float = 1e-4) -> float:
    """Population stability index of ``live`` against ``reference``, in reference-quantile bins."""
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(live, dtype=np.float64)
    for name, x in (("reference", ref), ("live", cur)):
        if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
            raise ValueError(f"{name} must be a non-empty 1-D sequence of finite numbers")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    k = edges.size + 1
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) / ref.size
    lv = np.maximum(np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k) / cur.size, floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum((lv - r) * np.log(lv / r)))
