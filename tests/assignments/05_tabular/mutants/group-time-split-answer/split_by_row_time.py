"""Cuts the rows by time (the last test_fraction of rows in time order are test): a customer who
stays ends up on both sides."""

# fails: test-group-time-split
# %% grade_id=group-time-split-answer
import numpy as np


def group_time_split(groups, times, test_fraction):
    groups, times = np.asarray(groups), np.asarray(times)
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    if len(groups) != len(times):
        raise ValueError("lengths differ")
    if len(np.unique(groups)) < 2:
        raise ValueError("need two groups")
    order = np.argsort(times, kind="stable")
    n_test = max(1, round(test_fraction * len(times)))
    return np.sort(order[:-n_test]).astype(np.int64), np.sort(order[-n_test:]).astype(np.int64)
