"""Wrong: forgets the error case: a negative smooth is silently used instead of raising ValueError."""
# fails: test-target-encode

# %% grade_id=target-encode-answer
import numpy as np


def target_encode_oof(categories, y, folds, smooth: float = 10.0) -> np.ndarray:
    _, codes = np.unique(np.asarray(categories), return_inverse=True)
    y = np.asarray(y).astype(np.float64)
    k = codes.max() + 1
    out = np.empty(len(y))
    for tr, te in folds:
        sums = np.bincount(codes[tr], weights=y[tr], minlength=k)
        cnts = np.bincount(codes[tr], minlength=k)
        prior = y[tr].mean()
        enc = np.full(k, prior)
        seen = cnts > 0
        enc[seen] = (sums[seen] + smooth * prior) / (cnts[seen] + smooth)
        out[te] = enc[codes[te]]
    return out
