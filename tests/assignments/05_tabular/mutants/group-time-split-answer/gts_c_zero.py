"""Wrong: lets c range over 0..G, so a small test_fraction gives an empty test side (and a large one can put every group in test)."""
# fails: test-group-time-split

# %% grade_id=group-time-split-answer
import numpy as np


def group_time_split(groups, times, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    if not (0 < test_fraction < 1):
        raise ValueError("test_fraction must be in (0, 1)")
    groups = np.asarray(groups)
    times = np.asarray(times)
    if len(groups) != len(times):
        raise ValueError("length mismatch")
    _, first_idx, inv = np.unique(groups, return_index=True, return_inverse=True)
    G = len(first_idx)
    if G < 2:
        raise ValueError("need two groups")
    starts = np.array([times[inv == k].min() for k in range(G)])
    by_first = np.argsort(first_idx)
    order = by_first[np.argsort(starts[by_first], kind="stable")]
    sizes = np.bincount(inv)[order]
    tail = np.concatenate(([0], np.cumsum(sizes[::-1])))  # c = 0..G
    c = int(np.argmin(np.abs(tail - test_fraction * len(groups))))
    test_mask = np.isin(inv, order[G - c :]) if c > 0 else np.zeros(len(groups), bool)
    return np.flatnonzero(~test_mask).astype(np.int64), np.flatnonzero(test_mask).astype(np.int64)
