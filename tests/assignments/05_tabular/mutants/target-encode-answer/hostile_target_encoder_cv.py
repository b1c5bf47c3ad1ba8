"""Hostile: runs scikit-learn's TargetEncoder (fetched via importlib from the private module) with a home-made cv object that replays the given folds."""
# fails: test-target-encode

# %% grade_id=target-encode-answer
import importlib

import numpy as np


class _Replay:
    def __init__(self, folds):
        self.folds = [(np.asarray(a), np.asarray(b)) for a, b in folds]

    def split(self, X=None, y=None, groups=None):
        return iter(self.folds)

    def get_n_splits(self, X=None, y=None, groups=None):
        return len(self.folds)


def target_encode_oof(categories, y, folds, smooth: float = 10.0) -> np.ndarray:
    if smooth < 0:
        raise ValueError("smooth must be >= 0")
    mod = importlib.import_module("sklearn.preprocessing._target_encoder")
    enc = getattr(mod, "Target" + "Encoder")(
        smooth=float(smooth) if smooth > 0 else 1e-300, target_type="continuous", cv=_Replay(folds)
    )
    x = np.asarray(categories)[:, None]
    return enc.fit_transform(x, np.asarray(y, dtype=np.float64))[:, 0].astype(np.float64)
