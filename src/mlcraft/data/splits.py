"""Validation splits for rows that come in groups and in time (05_tabular).

A random row split of a table with several rows per customer, or of rows that arrive over time,
lets the model see the future or the same customer on both sides, and the validation score
flatters it. Two splitters that respect the structure:

- :func:`group_time_split`: a group-aware hold-out in time, in the spirit of scikit-learn's
  ``GroupShuffleSplit`` (https://scikit-learn.org/stable/modules/cross_validation.html#group-shufflesplit)
  but deterministic: the groups that start last form the test side.
- :func:`time_series_folds`: expanding-window folds, ``sklearn.model_selection.TimeSeriesSplit``
  (https://scikit-learn.org/stable/modules/cross_validation.html#time-series-split) applied to
  the rows in time order, so the table does not need to be sorted first.

Times are ``datetime64`` or ``timedelta64`` (NaT raises) or real numbers (NaN raises). Ties in
time are broken by row order, so both functions are deterministic. :func:`group_time_split`
uses pandas (``mlcraft[mlops]``) to factorize group ids, imported when first used.
"""

from __future__ import annotations

import operator
from numbers import Real

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["group_time_split", "time_series_folds"]

Indices = NDArray[np.int64]


def _time_keys(times: ArrayLike) -> NDArray[np.int64] | NDArray[np.float64]:
    """``times`` as sortable numbers: int64 ticks for datetime64/timedelta64, else int64 or float64."""
    t = np.asarray(times)
    if t.ndim != 1:
        raise ValueError(f"times must be 1-D, got shape {t.shape}")
    if t.dtype.kind in "mM":
        missing = np.isnat(t)
        if missing.any():
            raise ValueError(f"times has NaT at positions {np.flatnonzero(missing)[:5].tolist()}")
        return t.view(np.int64)  # ticks of the array's one unit: order-preserving
    if t.dtype.kind in "iu":
        return t.astype(np.int64)
    if t.dtype.kind == "f":
        missing = np.isnan(t)
        if missing.any():
            raise ValueError(f"times has NaN at positions {np.flatnonzero(missing)[:5].tolist()}")
        return t.astype(np.float64)
    raise TypeError(f"times must be datetime64, timedelta64 or real numbers, got dtype {t.dtype}")


def group_time_split(groups: ArrayLike, times: ArrayLike, *, test_fraction: float) -> tuple[Indices, Indices]:
    """Hold out the groups that start last, about ``test_fraction`` of the rows.

    Args:
        groups (array[N]): group id of each row (any hashable: customer ids, strings); no missing ids.
        times (array[N]): time of each row, datetime64/timedelta64 or real; no NaT/NaN.
        test_fraction: the wanted share of rows on the test side, ``0 < test_fraction < 1``.

    Returns:
        ``(train_idx, test_idx)``: int64 row indices, each ascending, together a partition of
        ``range(N)``, both non-empty.

    The rule, exactly:

    1. A group's start is the earliest time of its rows. Groups are ordered by start, ties by
       first appearance in ``groups`` (the group whose first row comes earlier is earlier).
    2. The test side is the last ``c`` groups of that order, ``1 <= c <= G − 1``, with ``c``
       minimising ``|rows(c) − test_fraction · N|``; on a tie the smaller ``c`` (fewer test rows).

    Invariants: no group has rows on both sides; every test group starts no earlier than every
    train group (``max(start of train groups) <= min(start of test groups)``). Rows of a train
    group may still be later than the test's start (a customer who started early and stayed):
    the split is by *group start*, and a row-level cut in time would break groups.
    """
    if isinstance(test_fraction, bool) or not (isinstance(test_fraction, Real) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    group_values = np.asarray(groups)
    if group_values.ndim != 1:
        raise ValueError(f"groups must be 1-D, got shape {group_values.shape}")
    keys = _time_keys(times)
    if len(keys) != len(group_values):
        raise ValueError(f"groups and times must have the same length, got {len(group_values)} and {len(keys)}")
    import pandas as pd  # lazy: pandas is an extra (mlcraft[mlops])

    codes, uniques = pd.factorize(group_values)  # codes in order of first appearance; -1 = missing
    codes = np.asarray(codes, dtype=np.int64)
    if (codes < 0).any():
        raise ValueError(f"groups has missing ids at positions {np.flatnonzero(codes < 0)[:5].tolist()}")
    n_groups = len(uniques)
    if n_groups < 2:
        raise ValueError(f"group_time_split needs at least 2 groups, got {n_groups}")
    start = np.full(n_groups, keys.max(), dtype=keys.dtype)
    np.minimum.at(start, codes, keys)  # (G,) earliest time of each group
    size = np.bincount(codes, minlength=n_groups)  # (G,) rows per group
    order = np.lexsort((np.arange(n_groups), start))  # (G,) by start, then first appearance
    test_rows = np.cumsum(size[order][::-1])[:-1]  # (G - 1,) rows in the last c = 1 .. G-1 groups
    n_test_groups = int(np.argmin(np.abs(test_rows - test_fraction * len(codes)))) + 1  # first = smallest c
    is_test_group = np.zeros(n_groups, dtype=bool)
    is_test_group[order[n_groups - n_test_groups :]] = True
    is_test_row = is_test_group[codes]
    return np.flatnonzero(~is_test_row).astype(np.int64), np.flatnonzero(is_test_row).astype(np.int64)


def time_series_folds(times: ArrayLike, n_splits: int) -> list[tuple[Indices, Indices]]:
    """Expanding-window folds over the rows in time order: ``TimeSeriesSplit(n_splits)`` on sorted rows.

    Args:
        times (array[N]): time of each row, datetime64/timedelta64 or real; any order; no NaT/NaN.
        n_splits: number of folds, ``2 <= n_splits <= N − 1``.

    Returns:
        ``n_splits`` pairs ``(train_idx, test_idx)`` of int64 row indices, each listed in time order.

    With the rows sorted by time (a stable sort: equal times keep row order) and
    ``m = N // (n_splits + 1)``, fold ``i`` (0-based) tests the ``m`` rows starting at sorted
    position ``N − (n_splits − i)·m`` and trains on every row before them, as
    ``sklearn.model_selection.TimeSeriesSplit`` does on already-sorted data. Invariant: within
    a fold, ``max(train times) <= min(test times)`` (equal only where a time is tied across the cut).
    """
    keys = _time_keys(times)
    if isinstance(n_splits, bool) or operator.index(n_splits) < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    n = len(keys)
    if n_splits + 1 > n:
        raise ValueError(f"n_splits + 1 = {n_splits + 1} folds need at least that many rows, got {n}")
    order = np.argsort(keys, kind="stable").astype(np.int64)  # (N,) row indices in time order
    test_size = n // (n_splits + 1)
    first_test = n - n_splits * test_size
    return [(order[:begin], order[begin : begin + test_size]) for begin in range(first_test, n, test_size)]
