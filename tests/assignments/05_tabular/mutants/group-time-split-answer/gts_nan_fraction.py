"""Wrong: validates with `test_fraction <= 0 or test_fraction >= 1`, so test_fraction=NaN (not strictly between 0 and 1) is accepted and c=1 is returned."""
# fails: test-group-time-split

# %% grade_id=group-time-split-answer
import numpy as np


def group_time_split(groups, times, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    if test_fraction <= 0 or test_fraction >= 1:
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
    tail = np.cumsum(sizes[::-1])[: G - 1]
    c = int(np.argmin(np.abs(tail - test_fraction * len(groups)))) + 1
    test_mask = np.isin(inv, order[G - c :])
    return np.flatnonzero(~test_mask).astype(np.int64), np.flatnonzero(test_mask).astype(np.int64)
