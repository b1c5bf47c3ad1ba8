"""Takes the fewest last groups that reach test_fraction * N rows, instead of the closest count."""

# fails: test-group-time-split
# %% grade_id=group-time-split-answer
import numpy as np


def group_time_split(groups, times, test_fraction):
    groups, times = np.asarray(groups), np.asarray(times)
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    if len(groups) != len(times):
        raise ValueError("lengths differ")
    uniques, first, codes = np.unique(groups, return_index=True, return_inverse=True)
    if len(uniques) < 2:
        raise ValueError("need two groups")
    starts = np.array([times[codes == g].min() for g in range(len(uniques))])
    order = np.lexsort((first, starts))
    rows = np.cumsum(np.bincount(codes)[order][::-1])[:-1]
    c = min(int(np.searchsorted(rows, test_fraction * len(groups))) + 1, len(uniques) - 1)
    test = np.isin(codes, order[-c:])
    return np.flatnonzero(~test).astype(np.int64), np.flatnonzero(test).astype(np.int64)
