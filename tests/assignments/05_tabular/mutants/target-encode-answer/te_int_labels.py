"""Wrong: assumes 0/1 labels and casts y to int64, truncating real-valued targets (y may be any finite reals)."""
# fails: test-target-encode

# %% grade_id=target-encode-answer
import numpy as np


def target_encode_oof(categories, y, folds, smooth: float = 10.0) -> np.ndarray:
    if smooth < 0:
        raise ValueError("smooth must be >= 0")
    _, codes = np.unique(np.asarray(categories), return_inverse=True)
    y = np.asarray(y).astype(np.int64)
    k = codes.max() + 1
    out = np.empty(len(y), dtype=np.float64)
    for tr, te in folds:
        pos = np.bincount(codes[tr], weights=y[tr], minlength=k)
        cnts = np.bincount(codes[tr], minlength=k)
        prior = y[tr].mean()
        enc = np.full(k, prior)
        seen = cnts > 0
        enc[seen] = (pos[seen] + smooth * prior) / (cnts[seen] + smooth)
        out[te] = enc[codes[te]]
    return out
