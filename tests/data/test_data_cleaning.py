"""dedup_latest against a reference loop (the latest order_by per key, ties by content), invariant to
row order and idempotent; to_utc against pandas' own conversions, refusing to guess zones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcraft.data.cleaning import dedup_latest, to_utc
from mlcraft.data.fingerprint import frame_fingerprint


def _versions(seed: int, n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    key_a = pd.Series(rng.integers(0, 6, n)).astype("float64")
    key_a[rng.random(n) < 0.1] = np.nan
    version = pd.Series(rng.integers(0, 4, n)).astype("float64")  # many ties on purpose
    version[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"a": key_a, "b": rng.choice(["x", "y"], n), "version": version, "value": rng.normal(size=n)})


def _reference(frame: pd.DataFrame, keys: list[str]) -> dict[tuple[object, ...], list[float]]:
    """Per key (NaN as a key of its own): the value of the winning row, by brute force."""
    groups: dict[tuple[object, ...], list[pd.Series]] = {}
    for _, row in frame.iterrows():
        key = tuple("NaN" if pd.isna(row[k]) else row[k] for k in keys)
        groups.setdefault(key, []).append(row)
    out = {}
    for key, rows in groups.items():
        dated = [r for r in rows if pd.notna(r["version"])]
        pool = dated or rows
        if dated:
            newest = max(r["version"] for r in dated)
            pool = [r for r in dated if r["version"] == newest]
        out[key] = pool  # several candidates when versions tie: the hash picks one of them
    return {k: [r["value"] for r in v] for k, v in out.items()}


@pytest.mark.parametrize("keys", [["a"], ["a", "b"]], ids=["one-key", "two-keys"])
@pytest.mark.parametrize("seed", range(3))
def test_the_latest_version_of_each_key_wins(keys: list[str], seed: int) -> None:
    frame = _versions(seed)
    got = dedup_latest(frame, keys, "version")
    want = _reference(frame, keys)
    assert len(got) == len(want)
    for _, row in got.iterrows():
        key = tuple("NaN" if pd.isna(row[k]) else row[k] for k in keys)
        assert row["value"] in want[key], f"key {key}: {row['value']} is not one of the latest {want[key]}"


@pytest.mark.parametrize("seed", range(3))
def test_row_order_does_not_matter_and_a_second_run_changes_nothing(seed: int) -> None:
    frame = _versions(seed)
    once = dedup_latest(frame, ["a", "b"], "version")
    for shuffle in range(5):
        again = dedup_latest(frame.sample(frac=1.0, random_state=shuffle), ["a", "b"], "version")
        pd.testing.assert_frame_equal(again, once)
    pd.testing.assert_frame_equal(dedup_latest(once, ["a", "b"], "version"), once)
    assert frame_fingerprint(once) == frame_fingerprint(dedup_latest(once.iloc[::-1], ["a", "b"], "version"))


def test_drop_duplicates_after_a_sort_depends_on_row_order() -> None:
    """Why the content tie-break exists: the usual recipe gives different rows for the same data."""
    frame = pd.DataFrame({"k": [1, 1], "t": [5, 5], "v": ["first", "second"]})
    recipe = [f.sort_values("t").drop_duplicates("k", keep="last")["v"].item() for f in (frame, frame.iloc[::-1])]
    assert recipe[0] != recipe[1]
    ours = {dedup_latest(f, "k", "t")["v"].item() for f in (frame, frame.iloc[::-1])}
    assert len(ours) == 1


def test_a_missing_order_loses_and_the_result_keeps_dtypes() -> None:
    frame = pd.DataFrame(
        {"k": [1, 1, 2], "t": pd.to_datetime(["2024-01-02", None, None], utc=True), "v": pd.array([1, 2, 3], "Int64")}
    )
    got = dedup_latest(frame, "k", "t")
    assert got["v"].tolist() == [1, 3] and got.dtypes.equals(frame.dtypes)
    assert isinstance(got.index, pd.RangeIndex)


def test_empty_input_and_bad_columns() -> None:
    empty = _versions(0).iloc[:0]
    assert dedup_latest(empty, "a", "version").empty
    with pytest.raises(KeyError, match="no column \\['when'\\]"):
        dedup_latest(_versions(0), "a", "when")
    with pytest.raises(ValueError, match="at least one key"):
        dedup_latest(_versions(0), [], "version")


def test_to_utc_mixed_offsets_equal_pandas() -> None:
    text = pd.Series(["2024-03-10T01:30:00-05:00", "2024-03-10T03:30:00-04:00", "2024-03-10T06:30:00Z", None])
    want = pd.to_datetime(text, utc=True, format="ISO8601")
    pd.testing.assert_series_equal(to_utc(text), want)
    assert to_utc(text).iloc[0] == to_utc(text).iloc[1] - pd.Timedelta("1h")


def test_to_utc_naive_needs_a_zone_and_refuses_impossible_local_times() -> None:
    naive = pd.Series(pd.to_datetime(["2024-03-31 01:30", "2024-07-01 12:00"]))
    with pytest.raises(ValueError, match="assume="):
        to_utc(naive)
    oslo = to_utc(naive, assume="Europe/Oslo")
    assert oslo.dt.strftime("%H:%M").tolist() == ["00:30", "10:00"]
    with pytest.raises(Exception, match="2024-03-31 02:30"):  # the hour the clocks skip
        to_utc(pd.Series(pd.to_datetime(["2024-03-31 02:30"])), assume="Europe/Oslo")
    assert to_utc(pd.Series(["2024-07-01 12:00"]), assume="UTC").iloc[0] == pd.Timestamp("2024-07-01 12:00", tz="UTC")


def test_to_utc_converts_aware_times_and_refuses_mixed_forms() -> None:
    tokyo = pd.Series(pd.to_datetime(["2024-01-01 09:00"]).tz_localize("Asia/Tokyo"))
    assert to_utc(tokyo).iloc[0] == pd.Timestamp("2024-01-01 00:00", tz="UTC")
    with pytest.raises(ValueError, match="1 time\\(s\\) carry a UTC offset and 1 do not"):
        to_utc(pd.Series(["2024-01-01T00:00:00+01:00", "2024-01-01T00:00:00"]))
