"""Wrong: builds the output with np.asarray(y, dtype=float64) and fills it in place, so a float64 y given by the caller is overwritten (inputs modified)."""
# fails: test-target-encode

# %% grade_id=target-encode-answer
import numpy as np


def target_encode_oof(categories, y, folds, smooth: float = 10.0) -> np.ndarray:
    if smooth < 0:
        raise ValueError("smooth must be >= 0")
    cats = np.asarray(categories)
    y = np.asarray(y, dtype=np.float64)
    _, codes = np.unique(cats, return_inverse=True)
    folds = list(folds)
    stats = []
    for tr, te in folds:  # gather all statistics first ...
        k = codes.max() + 1
        sums = np.bincount(codes[tr], weights=y[tr], minlength=k)
        cnts = np.bincount(codes[tr], minlength=k)
        prior = y[tr].mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            enc = np.where(cnts > 0, (sums + smooth * prior) / (cnts + smooth), prior)
        stats.append((te, enc[codes[te]]))
    out = y  # ... then reuse y's buffer for the result
    for te, vals in stats:
        out[te] = vals
    return out
