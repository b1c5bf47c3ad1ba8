"""safe_merge and asof_join against pandas (merge with validate=, merge_asof on sorted inputs) and a
plain reference loop; the leak probe on a joined table that sees the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcraft.data.joins import JoinError, asof_join, assert_point_in_time, safe_merge

DAY = pd.Timedelta("1D")


def _labels_and_features(seed: int, n_left: int = 60, n_right: int = 80) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    left = pd.DataFrame(
        {
            "user": rng.integers(0, 6, n_left),
            "label_at": start + pd.to_timedelta(rng.integers(0, 30 * 24, n_left), unit="h"),
            "y": rng.integers(0, 2, n_left),
        },
        index=pd.Index(rng.permutation(1000)[:n_left], name="row"),
    )
    right = pd.DataFrame(
        {
            "user": rng.integers(0, 6, n_right),
            "feature_at": start + pd.to_timedelta(rng.integers(0, 30 * 24, n_right), unit="h"),
            "spend": rng.normal(size=n_right),
        }
    )
    right.loc[::7, "feature_at"] = left["label_at"].iloc[: len(right.loc[::7])].to_numpy()  # exact ties
    return left, right


def _reference_asof(
    left: pd.DataFrame, right: pd.DataFrame, max_age: pd.Timedelta | None, exact: bool
) -> list[tuple[pd.Timestamp, float]]:
    """The latest right row of the same user at or before (or strictly before) each left row's time."""
    rows = []
    for _, row in left.iterrows():
        times = right[(right["user"] == row["user"]) & right["feature_at"].notna()]
        ok = times["feature_at"] <= row["label_at"] if exact else times["feature_at"] < row["label_at"]
        if max_age is not None:
            ok &= row["label_at"] - times["feature_at"] <= max_age
        candidates = times[ok]
        if pd.isna(row["label_at"]) or candidates.empty:
            rows.append((pd.NaT, np.nan))
        else:
            best = candidates.sort_values("feature_at", kind="stable").iloc[-1]
            rows.append((best["feature_at"], best["spend"]))
    return rows


@pytest.mark.parametrize("max_age", [None, 2 * DAY, pd.Timedelta(0)], ids=["no-limit", "2-days", "zero"])
@pytest.mark.parametrize("exact", [True, False])
def test_asof_join_equals_a_reference_loop_on_shuffled_input(max_age: pd.Timedelta | None, exact: bool) -> None:
    left, right = _labels_and_features(0)
    right = right.drop_duplicates(["user", "feature_at"])  # one candidate per time: the loop's tie rule is moot
    got = asof_join(
        left.sample(frac=1.0, random_state=1),
        right.sample(frac=1.0, random_state=2),
        left_on="label_at",
        right_on="feature_at",
        by="user",
        max_age=max_age,
        allow_exact_matches=exact,
    )
    shuffled_left = left.sample(frac=1.0, random_state=1)
    assert got.index.equals(shuffled_left.index), "the left's order and index are kept"
    want = _reference_asof(shuffled_left, right, max_age, exact)
    assert [(t if pd.notna(t) else None) for t in got["feature_at"]] == [(t if pd.notna(t) else None) for t, _ in want]
    np.testing.assert_allclose(got["spend"].to_numpy(), [s for _, s in want], rtol=0, atol=0)


def test_asof_join_equals_merge_asof_on_sorted_input() -> None:
    left, right = _labels_and_features(1)
    left_sorted = left.sort_values("label_at", kind="stable").reset_index(drop=True)
    right_sorted = right.sort_values("feature_at", kind="stable")
    want = pd.merge_asof(
        left_sorted, right_sorted, left_on="label_at", right_on="feature_at", by="user", tolerance=3 * DAY
    )
    got = asof_join(left_sorted, right_sorted, left_on="label_at", right_on="feature_at", by="user", max_age=3 * DAY)
    pd.testing.assert_frame_equal(got, want)


def test_asof_join_missing_times_and_no_by() -> None:
    left = pd.DataFrame({"t": pd.to_datetime(["2024-01-03", None, "2024-01-01"])})
    right = pd.DataFrame({"ft": pd.to_datetime(["2024-01-02", None, "2023-12-31"]), "f": [2.0, 9.0, 1.0]})
    got = asof_join(left, right, left_on="t", right_on="ft")
    assert got["f"].tolist()[0] == 2.0 and np.isnan(got["f"].iloc[1]) and got["f"].iloc[2] == 1.0
    assert got.index.equals(left.index)


def test_the_leak_probe_catches_a_future_join() -> None:
    left, right = _labels_and_features(2)
    good = asof_join(left, right, left_on="label_at", right_on="feature_at", by="user", max_age=5 * DAY)
    assert_point_in_time(good, label_time="label_at", feature_time="feature_at", max_age=5 * DAY)
    leaky = pd.merge_asof(
        left.sort_values("label_at"), right.sort_values("feature_at"), left_on="label_at", right_on="feature_at",
        by="user", direction="nearest",
    )  # fmt: skip
    with pytest.raises(AssertionError, match="from after their label time"):
        assert_point_in_time(leaky, label_time="label_at", feature_time="feature_at")
    with pytest.raises(AssertionError, match="older than"):
        assert_point_in_time(good, label_time="label_at", feature_time="feature_at", max_age=pd.Timedelta("1h"))


def test_asof_join_bad_arguments() -> None:
    left, right = _labels_and_features(3)
    with pytest.raises(KeyError, match="right has no column \\['when'\\]"):
        asof_join(left, right, left_on="label_at", right_on="when")
    with pytest.raises(ValueError, match="max_age must be >= 0"):
        asof_join(left, right, left_on="label_at", right_on="feature_at", max_age=-DAY)


def test_safe_merge_equals_pandas_when_the_keys_keep_their_promise() -> None:
    orders = pd.DataFrame({"user": [1, 1, 2, 3], "amount": [5.0, 6.0, 7.0, 8.0]})
    users = pd.DataFrame({"user": [1, 2, 4], "country": ["NO", "PE", "JP"]})
    for how in ("inner", "left", "right", "outer"):
        want = orders.merge(users, on="user", how=how, validate="many_to_one")
        pd.testing.assert_frame_equal(safe_merge(orders, users, on="user", how=how), want)


def test_safe_merge_names_the_offending_keys_and_counts() -> None:
    orders = pd.DataFrame({"user": [1, 1, 2], "amount": [5.0, 6.0, 7.0]})
    users = pd.DataFrame({"user": [1, 1, 1, 2, 2, 3], "country": list("ABCDEF")})
    with pytest.raises(
        JoinError, match=r"right has 2 key\(s\) of \['user'\] on more than one row \(5 rows\): 1: 3 rows, 2: 2 rows"
    ):
        safe_merge(orders, users, on="user")
    with pytest.raises(JoinError, match=r"left has 1 key\(s\).*1: 2 rows.*right has 2"):
        safe_merge(orders, users, on="user", validate="one_to_one")
    assert len(safe_merge(orders, users, on="user", validate="many_to_many")) == 3 * 2 + 2


def test_safe_merge_refuses_null_keys_that_pandas_would_match() -> None:
    left = pd.DataFrame({"k": [1.0, np.nan], "a": [1, 2]})
    right = pd.DataFrame({"k": [np.nan, 2.0], "b": [3, 4]})
    assert len(left.merge(right, on="k")) == 1, "pandas joins NaN with NaN"
    with pytest.raises(JoinError, match=r"1 left row\(s\), 1 right row\(s\)"):
        safe_merge(left, right, on="k")
    assert len(safe_merge(left, right, on="k", how="inner", allow_null_keys=True)) == 1


def test_safe_merge_multi_column_keys_and_missing_columns() -> None:
    left = pd.DataFrame({"a": [1, 1], "b": ["x", "y"], "v": [0, 1]})
    right = pd.DataFrame({"a": [1, 1, 1], "b": ["x", "x", "y"], "w": [5, 6, 7]})
    with pytest.raises(JoinError, match=r"\(1, 'x'\): 2 rows"):
        safe_merge(left, right, on=["a", "b"])
    with pytest.raises(KeyError, match="left has no column \\['c'\\]"):
        safe_merge(left, right, on=["a", "c"])
    with pytest.raises(ValueError, match="at least one column"):
        safe_merge(left, right, on=[])
