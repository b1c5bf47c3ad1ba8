"""Wrong: iterates `folds` twice (a first pass to check coverage), so a generator such as KFold(5).split(x) is exhausted and the result stays all zeros."""
# fails: test-target-encode

# %% grade_id=target-encode-answer
import numpy as np


def target_encode_oof(categories, y, folds, smooth: float = 10.0) -> np.ndarray:
    if smooth < 0:
        raise ValueError("smooth must be >= 0")
    cats = np.asarray(categories)
    y = np.asarray(y, dtype=np.float64)
    n_test = sum(len(te) for _, te in folds)
    if n_test != len(y):
        pass  # every row should be in one test fold; nothing to do if a caller passes fewer
    out = np.zeros(len(y))
    for tr, te in folds:
        prior = y[tr].mean()
        for i in te:
            m = cats[tr] == cats[i]
            n = m.sum()
            out[i] = (y[tr][m].sum() + smooth * prior) / (n + smooth) if n else prior
    return out
