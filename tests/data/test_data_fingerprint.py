"""frame_fingerprint: equal exactly when two tables hold the same multiset of canonical rows under the
same names and dtypes. Checked against a slow reference that compares canonical rows as Python
tuples, on random tables and on every perturbation the module promises to see (or to ignore)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlcraft.data.fingerprint import frame_fingerprint, row_hashes


def _canonical(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return "missing"
    if isinstance(value, float | np.floating):
        return "missing" if math.isnan(value) else float(value) + 0.0  # -0.0 + 0.0 == 0.0
    if isinstance(value, pd.Timestamp):
        return ("t", value.tz_convert("UTC").value if value.tzinfo else value.value)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return (type(value).__qualname__, repr(value))


def _reference_key(frame: pd.DataFrame) -> tuple[Any, ...]:
    """What the fingerprint must capture, computed row by row in plain Python."""
    names = sorted(map(str, frame.columns))
    header = tuple(sorted((str(c), str(frame[c].dtype)) for c in frame.columns))
    rows = Counter(tuple(_canonical(frame[name].iloc[i]) for name in names) for i in range(len(frame)))
    return header, frozenset(rows.items())


def _table(seed: int, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.choice([0.0, -0.0, 1.5, np.nan, 2.25], size=n)
    return pd.DataFrame(
        {
            "user": rng.integers(0, 5, n),
            "amount": x,
            "city": pd.Series(rng.choice(np.array(["Oslo", "Lima", None], dtype=object), size=n), dtype=object),
            "at": pd.to_datetime(rng.integers(0, 4, n), unit="D", utc=True),
            "flag": pd.array(rng.choice([True, False], size=n), dtype="boolean"),
        }
    )


def test_row_and_column_order_do_not_matter() -> None:
    frame = _table(0)
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)[list(reversed(frame.columns))]
    assert frame_fingerprint(frame) == frame_fingerprint(shuffled)


def test_the_index_is_not_data() -> None:
    frame = _table(0)
    assert frame_fingerprint(frame) == frame_fingerprint(frame.set_axis(range(100, 100 + len(frame))))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ([0.0, 1.0], [-0.0, 1.0]),
        ([np.nan, 1.0], [-np.nan, 1.0]),
    ],
    ids=["negative-zero", "nan-sign"],
)
def test_negative_zero_and_every_nan_are_canonical(left: list[float], right: list[float]) -> None:
    a, b = pd.DataFrame({"x": left}), pd.DataFrame({"x": right})
    assert a["x"].to_numpy().tobytes() != b["x"].to_numpy().tobytes(), "the test needs different bytes"
    assert frame_fingerprint(a) == frame_fingerprint(b)


def test_a_nan_payload_is_canonical() -> None:
    bits = np.array([0x7FF8000000000001, 0xFFF8000000000000], dtype=np.uint64).view(np.float64)
    assert frame_fingerprint(pd.DataFrame({"x": bits[:1]})) == frame_fingerprint(pd.DataFrame({"x": bits[1:]}))


def test_missing_markers_of_a_column_are_one_value() -> None:
    as_none = pd.DataFrame({"s": pd.Series(["a", None], dtype=object)})
    as_nan = pd.DataFrame({"s": pd.Series(["a", np.nan], dtype=object)})
    assert frame_fingerprint(as_none) == frame_fingerprint(as_nan)
    ints = pd.DataFrame({"i": pd.array([1, None], dtype="Int64")})
    assert frame_fingerprint(ints) != frame_fingerprint(pd.DataFrame({"i": pd.array([1, 0], dtype="Int64")}))


def _perturbations(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    out = {}
    changed = frame.copy()
    changed.loc[3, "amount"] = 7.0
    out["one value"] = changed
    out["one int"] = frame.assign(user=frame["user"].where(frame.index != 5, 99))
    out["int as float"] = frame.assign(user=frame["user"].astype("float64"))
    out["renamed column"] = frame.rename(columns={"city": "town"})
    out["swapped names"] = frame.rename(columns={"amount": "user", "user": "amount"})
    out["a duplicated row"] = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    out["a row dropped"] = frame.iloc[1:]
    out["1 as a string"] = frame.assign(city=frame["city"].where(frame.index != 0, "1"))
    shifted = frame.copy()
    shifted["at"] = shifted["at"] + pd.Timedelta(nanoseconds=1)
    out["time by 1 ns"] = shifted
    out["another zone, same instants"] = frame.assign(at=frame["at"].dt.tz_convert("Asia/Tokyo"))
    out["a flag flipped"] = frame.assign(flag=~frame["flag"])
    out["empty"] = frame.iloc[:0]
    return out


def test_every_change_of_value_dtype_name_or_count_is_seen() -> None:
    frame = _table(2)
    base = frame_fingerprint(frame)
    for name, other in _perturbations(frame).items():
        assert _reference_key(other) != _reference_key(frame), f"the test's perturbation {name!r} changed nothing"
        assert frame_fingerprint(other) != base, f"the fingerprint missed: {name}"


def test_equal_exactly_when_the_reference_says_so() -> None:
    """Random pairs of small tables with few distinct values: many equal, many not."""
    rng = np.random.default_rng(3)
    agreed = {True: 0, False: 0}
    for trial in range(300):
        n = int(rng.integers(0, 4))
        a = pd.DataFrame({"k": rng.integers(0, 2, n), "v": rng.choice([0.0, -0.0, np.nan], n)})
        b = a.sample(frac=1.0, random_state=trial).reset_index(drop=True)
        if rng.random() < 0.5 and n:
            b.loc[int(rng.integers(0, n)), "k"] = int(rng.integers(0, 2))
        same = _reference_key(a) == _reference_key(b)
        assert (frame_fingerprint(a) == frame_fingerprint(b)) == same, (a, b)
        agreed[same] += 1
    assert agreed[True] > 50 and agreed[False] > 20, agreed


def test_categoricals_hash_values_not_codes() -> None:
    a = pd.DataFrame({"c": pd.Categorical(["x", "y"], categories=["x", "y"])})
    b = pd.DataFrame({"c": pd.Categorical(["x", "y"], categories=["y", "x"])})
    assert frame_fingerprint(a) == frame_fingerprint(b)
    assert frame_fingerprint(a) != frame_fingerprint(pd.DataFrame({"c": ["x", "y"]}))


def test_polars_frames_are_fingerprinted_as_their_pandas_conversion() -> None:
    frame = pl.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]})
    assert frame_fingerprint(frame) == frame_fingerprint(frame.to_pandas())
    assert frame_fingerprint(frame) == frame_fingerprint(frame.reverse())


def test_row_hashes_follow_rows() -> None:
    frame = _table(4)
    hashes = row_hashes(frame)
    assert hashes.dtype == np.uint64 and hashes.shape == (len(frame),)
    reordered = row_hashes(frame.iloc[::-1])
    assert np.array_equal(hashes[::-1], reordered)
    duplicated = frame.duplicated(keep=False).to_numpy()
    _, counts = np.unique(hashes, return_counts=True)
    assert counts.sum() == len(frame) and (counts > 1).sum() == len(frame[duplicated].drop_duplicates())


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="pandas or polars DataFrame, got list"):
        frame_fingerprint([[1, 2]])
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        frame_fingerprint(pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_large_tables_are_vectorized() -> None:
    """100k rows of numbers and times: the result is stable and sensitive (speed is in benchmarks)."""
    rng = np.random.default_rng(5)
    n = 100_000
    frame = pd.DataFrame({"i": rng.integers(0, 1000, n), "x": rng.normal(size=n)})
    frame["t"] = pd.to_datetime(frame["i"], unit="s")
    fp = frame_fingerprint(frame)
    assert fp == frame_fingerprint(frame.sample(frac=1.0, random_state=0))
    frame.loc[n - 1, "x"] = np.nextafter(frame.loc[n - 1, "x"], np.inf)
    assert frame_fingerprint(frame) != fp


def test_copies_of_rows_count() -> None:
    """Two copies of one row are not two copies of another (a XOR of row hashes cancels pairs)."""
    a = pd.DataFrame({"k": [1, 1], "v": [0.5, 0.5]})
    b = pd.DataFrame({"k": [2, 2], "v": [0.5, 0.5]})
    assert frame_fingerprint(a) != frame_fingerprint(b)
    c = pd.DataFrame({"k": [1, 1, 2], "v": [0.5, 0.5, 0.5]})
    d = pd.DataFrame({"k": [1, 2, 2], "v": [0.5, 0.5, 0.5]})
    assert frame_fingerprint(c) != frame_fingerprint(d)
