"""Groups with the same start are ordered by their id (np.unique's sorted order), not by first appearance."""

# fails: test-group-time-split
# %% grade_id=group-time-split-answer
import numpy as np


def group_time_split(groups, times, test_fraction):
    groups, times = np.asarray(groups), np.asarray(times)
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    if len(groups) != len(times):
        raise ValueError("lengths differ")
    uniques, codes = np.unique(groups, return_inverse=True)
    if len(uniques) < 2:
        raise ValueError("need two groups")
    starts = np.array([times[codes == g].min() for g in range(len(uniques))])
    order = np.argsort(starts, kind="stable")
    sizes = np.bincount(codes)[order]
    rows = np.cumsum(sizes[::-1])[:-1]
    c = int(np.argmin(np.abs(rows - test_fraction * len(groups)))) + 1
    test = np.isin(codes, order[-c:])
    return np.flatnonzero(~test).astype(np.int64), np.flatnonzero(test).astype(np.int64)
