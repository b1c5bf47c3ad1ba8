"""Cuts the reference's range into equal-width bins instead of quantile bins: right on evenly spread
data, wrong on anything skewed or bell-shaped (most of the reference lands in a few bins)."""

# fails: test-psi
# %% grade_id=psi-answer
import numpy as np


def psi(reference, live, bins: int = 10, floor: float = 1e-4) -> float:
    """Population stability index of ``live`` against ``reference``, in equal-width bins."""
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(live, dtype=np.float64)
    for name, x in (("reference", ref), ("live", cur)):
        if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
            raise ValueError(f"{name} must be a non-empty 1-D sequence of finite numbers")
    edges = np.unique(np.linspace(ref.min(), ref.max(), bins + 1)[1:-1])
    k = edges.size + 1
    r = np.maximum(np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) / ref.size, floor)
    lv = np.maximum(np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k) / cur.size, floor)
    return float(np.sum((lv - r) * np.log(lv / r)))
