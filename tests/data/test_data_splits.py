"""Tests for mlcraft.data.splits: a group hold-out in time checked against a loop that follows its
stated rule, and expanding-window folds checked against sklearn's TimeSeriesSplit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.model_selection import TimeSeriesSplit  # type: ignore[import-untyped]

from mlcraft.data.splits import group_time_split, time_series_folds

EPOCH = np.datetime64("2023-01-01T00:00:00", "s")


def _table(seed: int, n_groups: int = 60) -> tuple[NDArray[Any], NDArray[np.datetime64]]:
    """Customers with 1-12 rows each, string ids, times spread over a year at 1-hour resolution
    (so starts tie sometimes), rows shuffled."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 13, n_groups)
    groups = np.repeat(np.array([f"cust{g:03d}" for g in rng.permutation(n_groups)]), sizes)
    hours = rng.integers(0, 24 * 365, len(groups)) if seed % 2 else rng.integers(0, 50, len(groups))  # odd: few ties
    perm = rng.permutation(len(groups))
    return groups[perm], EPOCH + (hours[perm] * 3600).astype("timedelta64[s]")


def _split_loop(groups: NDArray[Any], times: NDArray[Any], test_fraction: float) -> tuple[list[int], list[int]]:
    """The docstring's rule with dicts and a loop over every cut."""
    start: dict[Any, Any] = {}
    first_row: dict[Any, int] = {}
    size: dict[Any, int] = {}
    for row, (g, t) in enumerate(zip(groups.tolist(), times.tolist(), strict=True)):
        start[g] = min(start.get(g, t), t)
        first_row.setdefault(g, row)
        size[g] = size.get(g, 0) + 1
    ordered = sorted(start, key=lambda g: (start[g], first_row[g]))
    best_c, best_gap = 0, float("inf")
    for c in range(1, len(ordered)):
        gap = abs(sum(size[g] for g in ordered[-c:]) - test_fraction * len(groups))
        if gap < best_gap:
            best_c, best_gap = c, gap
    test_groups = set(ordered[-best_c:])
    test = [row for row, g in enumerate(groups.tolist()) if g in test_groups]
    return [row for row in range(len(groups)) if row not in set(test)], test


@pytest.mark.parametrize("test_fraction", [0.05, 0.2, 0.5, 0.93])
@pytest.mark.parametrize("seed", range(6))
def test_group_time_split_follows_its_rule(seed: int, test_fraction: float) -> None:
    groups, times = _table(seed)
    train, test = group_time_split(groups, times, test_fraction=test_fraction)
    expected_train, expected_test = _split_loop(groups, times, test_fraction)
    assert train.tolist() == expected_train and test.tolist() == expected_test, f"seed {seed}"
    assert train.dtype == test.dtype == np.int64


@pytest.mark.parametrize("test_fraction", [0.1, 0.3, 0.7])
@pytest.mark.parametrize("seed", range(6))
def test_group_time_split_invariants(seed: int, test_fraction: float) -> None:
    groups, times = _table(seed)
    train, test = group_time_split(groups, times, test_fraction=test_fraction)
    assert np.array_equal(np.sort(np.r_[train, test]), np.arange(len(groups))), "a partition of the rows"
    assert len(train) > 0 and len(test) > 0
    assert not set(groups[train]) & set(groups[test]), "a group on both sides"
    start = {g: times[groups == g].min() for g in set(groups.tolist())}
    assert max(start[g] for g in set(groups[train])) <= min(start[g] for g in set(groups[test])), "test starts later"
    # As close to the fraction as group boundaries allow: no group moved across does better.
    sizes = {g: int(np.sum(groups == g)) for g in start}
    gap = abs(len(test) - test_fraction * len(groups))
    assert gap <= max(sizes.values()) / 2 + 1e-9 or len(set(groups[test])) in (1, len(start) - 1)


def test_group_time_split_one_row_per_group_hits_the_fraction() -> None:
    rng = np.random.default_rng(0)
    times = rng.permutation(40).astype(np.float64)  # distinct numeric times
    groups = np.arange(40)
    # 0.0625 * 40 = 2.5 exactly: a tie between 2 and 3 test rows, which goes to the smaller test.
    for fraction, n_test in [(0.25, 10), (0.01, 1), (0.99, 39), (0.0625, 2), (0.0626, 3)]:
        _, test = group_time_split(groups, times, test_fraction=fraction)
        assert len(test) == n_test, f"test_fraction {fraction}"
        assert set(times[test]) == set(range(40 - n_test, 40)), "the latest rows"


def test_group_time_split_all_rows_one_time_ties_by_first_appearance() -> None:
    groups = np.array(["b", "a", "b", "c", "d", "a", "d", "c"])  # first appearance: b, a, c, d
    times = np.full(8, np.datetime64("2024-05-01"))
    train, test = group_time_split(groups, times, test_fraction=0.5)
    assert sorted(set(groups[test])) == ["c", "d"] and sorted(set(groups[train])) == ["a", "b"]
    train2, test2 = group_time_split(groups, times, test_fraction=0.5)
    assert np.array_equal(train, train2) and np.array_equal(test, test2), "deterministic"


def test_group_time_split_ignores_row_order_when_starts_differ() -> None:
    groups, _ = _table(1)
    times = EPOCH + np.random.default_rng(3).permutation(len(groups)).astype("timedelta64[s]")  # distinct
    _, test = group_time_split(groups, times, test_fraction=0.3)
    perm = np.random.default_rng(9).permutation(len(groups))
    _, test_perm = group_time_split(groups[perm], times[perm], test_fraction=0.3)
    assert set(groups[test]) == set(groups[perm][test_perm])


def test_group_time_split_numeric_and_datetime_times_agree() -> None:
    groups, times = _table(2)
    seconds = (times - EPOCH).astype(np.int64)
    for numeric in (seconds, seconds.astype(np.float64), times.astype("datetime64[ns]")):
        for a, b in zip(
            group_time_split(groups, numeric, test_fraction=0.25),
            group_time_split(groups, times, test_fraction=0.25),
            strict=True,
        ):
            assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("groups", "times", "fraction", "match"),
    [
        ([1, 2], [1.0, 2.0], 0.0, r"test_fraction must be in \(0, 1\), got 0.0"),
        ([1, 2], [1.0, 2.0], 1.0, r"got 1.0"),
        ([1, 2], [1.0, 2.0], -0.2, r"got -0.2"),
        ([1, 2], [1.0, 2.0], float("nan"), r"got nan"),
        ([1, 2], [1.0, 2.0], True, r"got True"),
        ([1, 2, 3], [1.0, 2.0], 0.5, "same length, got 3 and 2"),
        ([7, 7, 7], [1.0, 2.0, 3.0], 0.5, "at least 2 groups, got 1"),
        ([], [], 0.5, "at least 2 groups, got 0"),
        ([1, 2, 3], [1.0, np.nan, 3.0], 0.5, r"NaN at positions \[1\]"),
        ([1, 2], np.array(["2024-01-01", "NaT"], dtype="datetime64[s]"), 0.5, r"NaT at positions \[1\]"),
        ([1.0, np.nan, 2.0], [1.0, 2.0, 3.0], 0.5, r"missing ids at positions \[1\]"),
        ([[1, 2]], [[1.0, 2.0]], 0.5, "groups must be 1-D"),
    ],
)
def test_group_time_split_rejects_bad_input(groups: Any, times: Any, fraction: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        group_time_split(groups, times, test_fraction=fraction)


def test_group_time_split_rejects_non_time_dtype() -> None:
    with pytest.raises(TypeError, match="datetime64, timedelta64 or real numbers, got dtype <U"):
        group_time_split([1, 2], ["monday", "tuesday"], test_fraction=0.5)


# ---------------------------------------------------------------- time_series_folds


@pytest.mark.parametrize(("n", "n_splits"), [(3, 2), (10, 3), (101, 5), (57, 7), (8, 7)])
def test_time_series_folds_match_sklearn_on_sorted_rows(n: int, n_splits: int) -> None:
    times = np.sort(np.random.default_rng(n).normal(size=n))
    ours = time_series_folds(times, n_splits)
    expected = list(TimeSeriesSplit(n_splits=n_splits).split(times))
    assert len(ours) == len(expected) == n_splits
    for (train, test), (sk_train, sk_test) in zip(ours, expected, strict=True):
        assert np.array_equal(train, sk_train) and np.array_equal(test, sk_test)


@pytest.mark.parametrize("seed", range(4))
def test_time_series_folds_on_shuffled_rows(seed: int) -> None:
    _, times = _table(seed)  # shuffled, with many tied hours for even seeds
    order = np.argsort(times, kind="stable")
    folds = time_series_folds(times, 4)
    for (train, test), (sk_train, sk_test) in zip(folds, TimeSeriesSplit(4).split(times), strict=True):
        assert np.array_equal(train, order[sk_train]) and np.array_equal(test, order[sk_test])
        assert times[train].max() <= times[test].min(), "train is never later than test"
        assert not set(train.tolist()) & set(test.tolist())
    sizes = [len(test) for _, test in folds]
    assert len(set(sizes)) == 1 and sizes[0] == len(times) // 5
    assert [len(train) for train, _ in folds] == sorted(len(train) for train, _ in folds), "expanding"


def test_time_series_folds_equal_times_keep_row_order() -> None:
    times = np.array(["2024-01-02", "2024-01-01", "2024-01-02", "2024-01-01", "2024-01-03"], dtype="datetime64[D]")
    assert [(a.tolist(), b.tolist()) for a, b in time_series_folds(times, 4)] == [
        ([1], [3]),
        ([1, 3], [0]),
        ([1, 3, 0], [2]),
        ([1, 3, 0, 2], [4]),
    ]


@pytest.mark.parametrize(
    ("times", "n_splits", "match"),
    [
        ([1.0, 2.0, 3.0], 1, "n_splits must be an integer >= 2, got 1"),
        ([1.0, 2.0, 3.0], 3, "4 folds need at least that many rows, got 3"),
        ([], 2, "3 folds need at least that many rows, got 0"),
        ([1.0, np.nan, 3.0, 4.0], 2, r"NaN at positions \[1\]"),
    ],
)
def test_time_series_folds_rejects_bad_input(times: list[float], n_splits: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        time_series_folds(times, n_splits)
