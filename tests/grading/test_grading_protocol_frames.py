"""pandas and polars tables through the grading codec: exact round trips, and what never decodes."""

from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import sys
import time
import zoneinfo
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import polars.testing
import pytest

from mlcraft.classroom.grading.protocol import DataError, DataLimits, decode, encode, encode_into

# A quiet NaN with a payload and a negative NaN: NumPy keeps both bit patterns through a copy.
_ODD_NANS = np.array([0x7FF8_0000_0000_0001, 0xFFF8_0000_0000_0000], dtype=np.uint64).view(np.float64)


def _roundtrip(value: Any) -> Any:
    tree, buffers = encode(value)
    # The tree is plain JSON, as it travels in a Jupyter message.
    return decode(json.loads(json.dumps(tree, allow_nan=False)), buffers)


def _columns() -> dict[str, Any]:
    """Three rows of every column dtype that travels, missing values included."""
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    return {
        "bool": np.array([True, False, True]),
        **{
            np.dtype(t).name: np.array([0, 1, np.iinfo(t).max], dtype=t)
            for t in (np.int8, np.int16, np.int32, np.int64)
        },
        **{
            np.dtype(t).name: np.array([0, 1, np.iinfo(t).max], dtype=t)
            for t in (np.uint8, np.uint16, np.uint32, np.uint64)
        },
        "int64-min": np.array([np.iinfo(np.int64).min, -1, 0]),
        "float16": np.array([-0.0, np.nan, 1.5], dtype=np.float16),
        "float32": np.array([-0.0, np.nan, np.inf], dtype=np.float32),
        "float64": np.concatenate([[-0.0], _ODD_NANS]),
        **{
            f"datetime[{u}]": np.array(["2020-01-01T00:00:01", "NaT", "1969-12-31T23:59:59"], dtype=f"M8[{u}]")
            for u in ("s", "ms", "us", "ns")
        },
        **{f"timedelta[{u}]": np.array([1, -2, "NaT"], dtype=f"m8[{u}]") for u in ("s", "ms", "us", "ns")},
        "datetime-tz": pd.DatetimeIndex(["2021-03-28 01:59", None, "2021-10-31 02:30"]).tz_localize(
            paris, ambiguous=[True, True, False]
        ),
        "datetime-tz-ns-utc": pd.date_range("2020-01-01", periods=3, freq="h", tz="UTC", unit="ns"),
        "datetime-tz-offset": pd.date_range(
            "2020-01-01", periods=3, tz=dt.timezone(dt.timedelta(hours=-5, minutes=-30))
        ),
        "datetime-tz-s": pd.date_range("1000-01-01", periods=3, freq="YS", tz="Asia/Tokyo", unit="s"),
        **{name: pd.array([1, None, 0], dtype=name) for name in ("Int8", "Int16", "Int32", "Int64")},
        **{name: pd.array([1, None, 0], dtype=name) for name in ("UInt8", "UInt16", "UInt32", "UInt64")},
        "Float32": pd.array([-0.0, None, 2.5], dtype="Float32"),
        "Float64": pd.arrays.FloatingArray(np.array([-0.0, np.nan, 7.0]), np.array([False, False, True])),
        "boolean": pd.array([True, None, False], dtype="boolean"),
        "string": pd.array(["a", None, "é\0"], dtype="string"),
        "string-python-nan": pd.array(["a", None, ""], dtype=pd.StringDtype("python", na_value=np.nan)),
        "str": pd.array(["x", None, "y"], dtype="str"),
        "category": pd.Categorical(["b", None, "a"], categories=["b", "a", "unused"]),
        "category-ordered-int": pd.Categorical([3, 1, None], categories=[3, 2, 1], ordered=True),
        "category-datetime": pd.Categorical(pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-01"])),
        "object": np.array([None, 1, 2.5], dtype=object),
        "object-mixed": np.array([float("nan"), pd.Timestamp("2020-01-01 00:00:00.5"), pd.NA], dtype=object),
        "object-more": np.array([2**70, pd.NaT, pd.Timestamp("2020", tz=paris)], dtype=object),
        "object-str": np.array(["a", True, None], dtype=object),
    }


_COLUMNS = _columns()


def _bits(values: Any) -> Any:
    array = np.asarray(values)
    return array.view(np.uint64) if array.dtype == np.float64 else array


@pytest.mark.parametrize("name", list(_COLUMNS))
def test_every_pandas_dtype_roundtrips_exactly_as_column_series_and_index(name: str) -> None:
    values = _COLUMNS[name]
    frame = pd.DataFrame({name: values, "n": [1, 2, 3]})
    back = _roundtrip(frame)
    assert type(back) is pd.DataFrame
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    series = pd.Series(values, name=name, index=pd.Index(["r0", "r1", "r2"], name="row"))
    series_back = _roundtrip(series)
    pd.testing.assert_series_equal(series_back, series, check_exact=True)
    if series.dtype == np.float64:  # -0.0 and NaN payloads are bit for bit
        assert (_bits(series_back) == _bits(series)).all()
    if name != "float16":  # pandas has no float16 Index
        index = pd.Index(values, name="i")
        pd.testing.assert_index_equal(_roundtrip(index), index, exact=True, check_exact=True)


def test_all_dtypes_in_one_frame_with_every_missing_value() -> None:
    frame = pd.DataFrame(_COLUMNS)
    frame.columns.name = "what"
    back = _roundtrip(frame)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert (_bits(back["float64"]) == _bits(frame["float64"])).all()
    masked = back["Float64"].array
    assert np.isnan(masked[1]) and masked[2] is pd.NA  # a NaN in a nullable column is not NA
    assert back["object-more"][0] == 2**70 and back["object-more"][1] is pd.NaT


def test_decoded_frames_own_their_data() -> None:
    tree, buffers = encode(pd.DataFrame({"x": [1.0, 2.0], "i": pd.array([1, None], dtype="Int8")}))
    shared = [bytearray(b) for b in buffers]  # zmq can hand over writable frames
    back = decode(tree, shared)
    for buffer in shared:
        buffer[:] = b"\xff" * len(buffer)
    assert back["x"].tolist() == [1.0, 2.0] and back["i"].tolist() == [1, pd.NA]
    back.loc[0, "x"] = 5.0
    assert back["x"].tolist() == [5.0, 2.0]


def test_time_zones_across_daylight_saving_and_fixed_offsets() -> None:
    for zone in ("Europe/Paris", "America/New_York", "Australia/Lord_Howe", "UTC", "Etc/GMT+5"):
        stamps = pd.date_range("2021-03-27", "2021-11-08", freq="37min", tz=zone)
        frame = pd.DataFrame({"t": stamps, "v": np.arange(len(stamps))}, index=stamps.tz_convert("Asia/Kolkata"))
        pd.testing.assert_frame_equal(_roundtrip(frame), frame, check_exact=True)
    back = _roundtrip(
        pd.Series(pd.DatetimeIndex(["2021-10-31 02:30"] * 2).tz_localize("Europe/Paris", ambiguous=[True, False]))
    )
    assert back[0].utcoffset() == dt.timedelta(hours=2) and back[1].utcoffset() == dt.timedelta(hours=1)
    assert back.dt.tz == zoneinfo.ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    "value",
    [
        pd.Timestamp("2021-03-28 01:30"),
        pd.Timestamp("2021-03-28 03:30", tz="Europe/Paris"),
        pd.Timestamp("2021-10-31 02:30").tz_localize("Europe/Paris", ambiguous=False),
        pd.Timestamp("2021-10-31 02:30", tz="UTC"),
        pd.Timestamp("1677-09-22"),
        pd.Timestamp("3000-01-01 00:00:01"),
        pd.Timestamp("0001-01-01", tz="Asia/Tokyo"),
        pd.Timestamp("2020-01-01 00:00:00.000000001"),
        pd.Timedelta(-1, unit="ns"),
        pd.Timedelta(days=10**5).as_unit("s"),
        pd.Timedelta(3, unit="ms").as_unit("ms"),
    ],
    ids=repr,
)
def test_pandas_time_scalars_roundtrip(value: Any) -> None:
    back = _roundtrip(value)
    assert type(back) is type(value) and back == value and back.unit == value.unit
    if isinstance(value, pd.Timestamp):
        assert back.tz == value.tz and back.utcoffset() == value.utcoffset()


def test_missing_value_singletons_roundtrip_as_themselves() -> None:
    assert _roundtrip(pd.NaT) is pd.NaT and _roundtrip(pd.NA) is pd.NA
    back = _roundtrip([pd.NA, {"k": pd.NaT}])
    assert back[0] is pd.NA and back[1]["k"] is pd.NaT


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a": np.array([], dtype=np.int8), "b": pd.array([], dtype="string"), "c": pd.Categorical([])}),
        pd.DataFrame(index=pd.RangeIndex(5)),
        pd.DataFrame(index=pd.Index(["x", "y"], name="k")),
        pd.DataFrame(),
        pd.DataFrame(columns=pd.Index([], dtype="str", name="empty")),
        pd.DataFrame({"a": []}, index=pd.DatetimeIndex([], name="when")),
    ],
    ids=["no-rows", "no-columns", "no-columns-named-index", "neither", "neither-named", "no-rows-datetime-index"],
)
def test_empty_frames_roundtrip(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(_roundtrip(frame), frame, check_exact=True)


def test_labels_duplicated_non_string_and_tuples() -> None:
    frame = pd.DataFrame(np.arange(12).reshape(2, 6), columns=[1, 1, "a", 2.5, None, True])
    pd.testing.assert_frame_equal(_roundtrip(frame), frame, check_exact=True)
    assert list(_roundtrip(frame).columns) == [1, 1, "a", 2.5, None, True]
    for columns in (
        [("a", 1), ("b", 2), ("a", 1)],  # an object Index of tuples (pandas 3)
        pd.MultiIndex.from_tuples([("a", 1), ("b", 2), ("a", 1)], names=["top", None]),
        pd.Index([0.5, np.nan, -0.0]),
        pd.RangeIndex(10, 4, -2, name="r"),
        pd.Index([False, True, False]),
    ):
        frame = pd.DataFrame(np.zeros((2, 3)), columns=columns)
        pd.testing.assert_frame_equal(_roundtrip(frame), frame, check_exact=True)
    series = pd.Series([1.0], name=(1, "x", None, 2.5))
    pd.testing.assert_series_equal(_roundtrip(series), series, check_exact=True)
    strict = pd.DataFrame({"a": [1]}).set_flags(allows_duplicate_labels=False)
    assert _roundtrip(strict).flags.allows_duplicate_labels is False


@pytest.mark.parametrize(
    "index",
    [
        pd.Index(["b", "a", "b"], name="key"),
        pd.Index([3, 1, 2], dtype=np.uint16, name=7),
        pd.Index([0.5, -0.0, np.nan], name=("a", 1)),
        pd.date_range("2020-03-01", periods=3, freq="D", name="day"),
        pd.date_range("2021-03-28", periods=3, freq="h", tz="Europe/Paris"),
        pd.timedelta_range("1s", periods=3, freq="2s"),
        pd.DatetimeIndex(["2020-01-01", None, "2019-01-01"]),
        pd.CategoricalIndex(["x", "y", "x"], name="c"),
        pd.Index(pd.array([1, None, 3], dtype="Int32")),
        pd.Index(["x", None, 1], dtype=object),
        pd.MultiIndex.from_arrays([["a", "a", "b"], pd.to_datetime(["2020", "2021", "2020"])], names=["k", "when"]),
        pd.RangeIndex(-3, 3, 2, name="r"),
    ],
    ids=repr,
)
def test_named_and_non_range_indexes(index: pd.Index) -> None:
    frame = pd.DataFrame({"v": [1.0, 2.0, 3.0], "s": ["a", "b", None]}, index=index)
    pd.testing.assert_frame_equal(_roundtrip(frame), frame, check_exact=True, check_freq=True)
    series = pd.Series([1, 2, 3], index=index, name="s")
    pd.testing.assert_series_equal(_roundtrip(series), series, check_exact=True, check_freq=True)
    pd.testing.assert_index_equal(_roundtrip(index), index, exact=True, check_exact=True)


def test_large_frame_is_fast() -> None:
    rng = np.random.default_rng(0)
    rows = 100_000
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "x": rng.normal(size=rows),
            "when": pd.date_range("2020-01-01", periods=rows, freq="min", tz="Europe/Paris"),
            "name": pd.array([f"user{i % 997}" for i in range(rows)], dtype="str"),
            "cat": pd.Categorical(rng.choice(["a", "b", "c"], size=rows)),
            "maybe": pd.array(rng.integers(0, 9, rows), dtype="Int64"),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "maybe"] = pd.NA
    start = time.perf_counter()
    back = _roundtrip(frame)
    elapsed = time.perf_counter() - start
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert elapsed < 5, f"100k rows took {elapsed:.1f}s"


def test_frames_nested_in_containers() -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    series = pd.Series([0.5, np.nan], name="s")
    value = {"frames": [frame, (series, frame.iloc[:0])], 3: (pd.Timestamp("2020"), pl.DataFrame({"p": [1]}))}
    back = _roundtrip(value)
    pd.testing.assert_frame_equal(back["frames"][0], frame, check_exact=True)
    pd.testing.assert_series_equal(back["frames"][1][0], series, check_exact=True)
    pd.testing.assert_frame_equal(back["frames"][1][1], frame.iloc[:0], check_exact=True)
    assert type(back["frames"][1]) is tuple and back[3][0] == pd.Timestamp("2020")
    polars.testing.assert_frame_equal(back[3][1], pl.DataFrame({"p": [1]}))


def test_tables_after_other_buffers_keep_their_buffer_indices() -> None:
    buffers: list[bytes] = []
    first = encode_into(b"spacer", buffers)
    frame = pd.DataFrame({"x": [1.5, 2.5], "m": pd.array([1, None], dtype="Int8")})
    second = encode_into([frame, pl.Series("p", [1, None])], buffers)
    assert decode(first, buffers) == b"spacer"
    back = decode(second, buffers)
    pd.testing.assert_frame_equal(back[0], frame, check_exact=True)
    polars.testing.assert_series_equal(back[1], pl.Series("p", [1, None]))


def test_encoding_and_decoding_count_the_same_values() -> None:
    for value in (
        pd.DataFrame({"s": ["ab", None], "o": np.array([1, "x"], dtype=object), "c": pd.Categorical(["a", "b"])}),
        pd.Series([1.0, 2.0], index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)])),
        pl.DataFrame({"s": ["ab", None], "n": [None, None], "i": [1, None]}),
        pl.DataFrame(height=7),
    ):
        tree, buffers = encode(value)
        needed = next(n for n in range(1, 200) if _fits(value, DataLimits(max_nodes=n)))
        decode(tree, buffers, DataLimits(max_nodes=needed))
        with pytest.raises(DataError, match="values"):
            decode(tree, buffers, DataLimits(max_nodes=needed - 1))


def _fits(value: Any, limits: DataLimits) -> bool:
    try:
        encode(value, limits)
    except DataError:
        return False
    return True


# --- polars -------------------------------------------------------------------------------------
def _polars_frame() -> pl.DataFrame:
    return pl.DataFrame(
        [
            *(pl.Series(f"i{b}", [-1, None, 2], dtype=getattr(pl, f"Int{b}")) for b in (8, 16, 32, 64)),
            *(pl.Series(f"u{b}", [0, None, 2**b - 1], dtype=getattr(pl, f"UInt{b}")) for b in (8, 16, 32, 64)),
            pl.Series("f32", [float("nan"), None, -0.0], dtype=pl.Float32),
            pl.Series("f64", [_ODD_NANS[0], None, -0.0], dtype=pl.Float64),
            pl.Series("f64-nan-only", [float("nan"), 1.0, _ODD_NANS[1]], dtype=pl.Float64),
            pl.Series("bool", [True, None, False]),
            pl.Series("str", ["a", None, "é"]),
            pl.Series("cat", ["b", None, "a"], dtype=pl.Categorical),
            pl.Series("date", [dt.date(1969, 12, 31), None, dt.date(2024, 2, 29)]),
            *(
                pl.Series(f"dt-{u}", [dt.datetime(2021, 3, 28, 0, 30), None, dt.datetime(1900, 1, 1)]).cast(
                    pl.Datetime(u)
                )
                for u in ("ms", "us", "ns")
            ),
            pl.Series("dt-paris", [dt.datetime(2021, 3, 28, 0, 30), dt.datetime(2021, 3, 28, 1, 30), None])
            .cast(pl.Datetime("us", "UTC"))
            .dt.convert_time_zone("Europe/Paris"),
            pl.Series("dt-utc", [dt.datetime(2020, 1, 1), None, None]).dt.replace_time_zone("UTC"),
            pl.Series("dt-etc", [dt.datetime(2020, 1, 1), None, None]).dt.replace_time_zone("Etc/GMT-5"),
            *(
                pl.Series(f"dur-{u}", [dt.timedelta(days=-1), None, dt.timedelta(microseconds=1)]).cast(pl.Duration(u))
                for u in ("ms", "us", "ns")
            ),
            pl.Series("null", [None, None, None]),
        ]
    )


def test_polars_frames_and_series_roundtrip_exactly() -> None:
    frame = _polars_frame()
    back = _roundtrip(frame)
    assert type(back) is pl.DataFrame
    polars.testing.assert_frame_equal(back, frame, check_exact=True)
    for name in ("f32", "f64", "f64-nan-only"):  # nulls stay nulls, NaNs stay NaNs, bit for bit
        assert back[name].is_null().to_list() == frame[name].is_null().to_list()
        assert back[name].is_nan().to_list() == frame[name].is_nan().to_list()
        old, new = frame[name].fill_null(0).to_numpy(), back[name].fill_null(0).to_numpy()
        assert old.tobytes() == new.tobytes()
    for column in frame.get_columns():
        polars.testing.assert_series_equal(_roundtrip(column), column, check_exact=True)


@pytest.mark.parametrize(
    "frame",
    [
        pl.DataFrame(),
        pl.DataFrame(height=4),
        _polars_frame().clear(),
        pl.DataFrame({"a": pl.Series([], dtype=pl.String)}),
    ],
    ids=["empty", "no-columns", "no-rows", "no-rows-string"],
)
def test_empty_polars_frames(frame: pl.DataFrame) -> None:
    back = _roundtrip(frame)
    polars.testing.assert_frame_equal(back, frame)
    assert back.shape == frame.shape


def test_large_polars_frame() -> None:
    rows = 100_000
    frame = pl.DataFrame({"i": np.arange(rows), "s": [f"k{i % 13}" for i in range(rows)]}).with_columns(
        pl.when(pl.col("i") % 7 == 0).then(None).otherwise(pl.col("i") / 3).alias("f")
    )
    start = time.perf_counter()
    back = _roundtrip(frame)
    assert time.perf_counter() - start < 5
    polars.testing.assert_frame_equal(back, frame, check_exact=True)


def test_importing_the_codec_imports_neither_pandas_nor_polars() -> None:
    code = (
        "import sys; from mlcraft.classroom.grading.protocol import encode, decode\n"
        "decode(*encode([1, 'x', b'y']))\n"
        "assert 'pandas' not in sys.modules and 'polars' not in sys.modules, sorted(sys.modules)\n"
        "import pandas as pd; decode(*encode(pd.DataFrame({'a': [1]})))\n"
        "assert 'polars' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- what is refused when encoding -------------------------------------------------------------
class _Tagged(pd.DataFrame):  # type: ignore[misc]
    pass


class _TaggedSeries(pd.Series):  # type: ignore[misc]
    pass


class _PolarsSub(pl.DataFrame):
    pass


class _Thing:
    pass


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (_Tagged({"a": [1]}), r"_Tagged \(a subclass of pandas.DataFrame\) cannot be sent"),
        (_TaggedSeries([1]), r"subclass of pandas.Series"),
        (_PolarsSub({"a": [1]}), r"subclass of polars.DataFrame"),
        (pl.LazyFrame({"a": [1]}), r"collect\(\) it first"),
        (
            pd.DataFrame({"col": [1, _Thing()]}, dtype=object),
            r"column 'col' \(dtype object\) holds a .*_Thing at position 1",
        ),
        (pd.DataFrame({"d": [dt.date(2020, 1, 1)]}), r"column 'd' \(dtype object\) holds a datetime.date"),
        (pd.Series([[1, 2]], dtype=object), r"the series \(dtype object\) holds a builtins.list"),
        (pd.DataFrame({"p": pd.period_range("2020", periods=2)}), r"column 'p' has dtype period\[D\], which cannot"),
        (pd.DataFrame({"i": pd.arrays.IntervalArray.from_breaks([0, 1, 2])}), r"column 'i' has dtype interval"),
        (pd.Series([1], name=frozenset()), r"the series name is a builtins.frozenset"),
        (pd.DataFrame({"a": [1]}, index=pd.period_range("2020", periods=1)), r"PeriodIndex cannot be sent"),
        (pl.DataFrame({"l": [[1, 2]]}), r"polars column 'l' has dtype List\(Int64\)"),
        (pd.period_range("2020", periods=1)[0], r"a pandas.Period cannot be sent"),
    ],
    ids=[
        "frame-subclass",
        "series-subclass",
        "polars-subclass",
        "lazyframe",
        "arbitrary-object",
        "date-objects",
        "list-element",
        "period-dtype",
        "interval-dtype",
        "bad-name",
        "period-index",
        "polars-list",
        "period-scalar",
    ],
)
def test_encoding_refuses_what_is_not_plain_table_data(value: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        encode(value)


def test_encoding_counts_table_values_toward_the_limits() -> None:
    strings = pd.DataFrame({"s": ["abc"] * 10})
    with pytest.raises(DataError, match="values"):
        encode(strings, DataLimits(max_nodes=10))
    with pytest.raises(DataError, match="characters"):
        encode(strings, DataLimits(max_text=20))
    with pytest.raises(DataError, match="bytes"):
        encode(pd.DataFrame({"x": np.zeros(100)}), DataLimits(max_bytes=500))
    with pytest.raises(DataError, match="characters"):
        encode(pl.DataFrame({"s": ["abc"] * 10}), DataLimits(max_text=20))


# --- what is refused when decoding --------------------------------------------------------------
def _tree(value: Any) -> tuple[Any, list[bytes]]:
    tree, buffers = encode(value)
    return json.loads(json.dumps(tree)), buffers


_BASE = pd.DataFrame(
    {
        "i": np.array([1, 2, 3], dtype=np.int64),
        "m": pd.array([1, None, 3], dtype="Int64"),
        "c": pd.Categorical(["a", "b", "a"]),
        "t": pd.date_range("2020", periods=3, tz="Europe/Paris"),
        "s": ["x", "y", None],
        "o": np.array([1, "a", None], dtype=object),
    }
)


def _hostile(edit: Any) -> tuple[Any, list[bytes]]:
    tree, buffers = _tree(_BASE)
    tree = copy.deepcopy(tree)
    buffers = list(buffers)
    edit(tree, buffers)
    return tree, buffers


def _set(path: list[Any], value: Any) -> Any:
    def edit(tree: Any, buffers: list[bytes]) -> None:
        node = tree
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _set_buffer(path: list[Any], data: bytes) -> Any:
    def edit(tree: Any, buffers: list[bytes]) -> None:
        node = tree
        for key in path:
            node = node[key]
        buffers[node["b"]] = data

    return edit


_I, _M, _C, _T, _S, _O = range(6)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set_buffer(["data", _I], b"\0" * 10), r"column 0 \('i'\): 3 rows of int64 need 24 bytes, the buffer has 10"),
        (_set_buffer(["data", _I], b"\0" * 16), r"3 rows of int64 need 24 bytes"),
        (_set(["index", "v", 1], 10**12), r"column 0 \('i'\): 1000000000000 rows of int64 need"),
        (_set(["index", "v"], [0, 2**63, 1]), r"expected a 64-bit int"),
        (_set(["index", "v", 2], 0), r"RangeIndex with step 0"),
        (_set(["data", _S, "v"], ["x", "y"]), r"3 rows but 2 strings"),
        (_set(["data", _S, "v", 0], 5), r"a int among the strings"),
        (_set(["data", _O, "v"], [1]), r"3 rows but 1 values"),
        (_set(["data", _O, "v", 0], {"t": "list", "v": []}), r"a builtins.list at position 0"),
        (_set(["data", _O, "v", 0], {"t": "bytes", "b": 0}), r"a builtins.bytes at position 0"),
        (_set(["data", _I, "dtype"], "|O"), r"dtype '\|O' is not allowed"),
        (_set(["data", _I, "dtype"], "<c16"), r"dtype '<c16' is not allowed"),
        (_set(["data", _I, "dtype"], "<M8[D]"), r"dtype '<M8\[D\]' is not allowed"),
        (_set(["data", _I, "dtype"], ">i8"), r"dtype '>i8' is not allowed"),
        (_set(["data", _I, "dtype"], "<f16"), r"is not allowed"),
        (_set(["data", _I, "dtype"], "float128!"), r"unknown dtype"),
        (_set(["data", _I, "kind"], "pickle"), r"unknown column kind 'pickle'"),
        (_set(["data", _M, "dtype"], "Int128"), r"unknown nullable dtype 'Int128'"),
        (_set(["data", _M, "values", "dtype"], "<f8"), r"Int64 values must be int64, not float64"),
        (_set_buffer(["data", _M, "mask"], b"\0\0"), r"column 1 \('m'\) \(mask\): 3 rows of bool need 3 bytes"),
        (_set_buffer(["data", _C, "codes"], b"\0\x01\x05"), r"category codes must lie in \[-1, 2\)"),
        (_set_buffer(["data", _C, "codes"], b"\0\x01\xfe"), r"category codes must lie in \[-1, 2\)"),
        (_set(["data", _C, "codes", "dtype"], "<f8"), r"is not allowed"),
        (_set(["data", _C, "categories", "v"], ["a", "a"]), r"Categorical categories must be unique"),
        (_set(["data", _C, "ordered"], "yes"), r"without its ordered flag"),
        (_set(["data", _T, "tz"], "Not/AZone"), r"unknown time zone 'Not/AZone'"),
        (_set(["data", _T, "tz"], "../../etc/passwd"), r"is not a time zone"),
        (_set(["data", _T, "tz"], "/etc/localtime"), r"is not a time zone"),
        (_set(["data", _T, "tz"], "+25:00"), r"bad time zone offset"),
        (_set(["data", _T, "tz"], 3600), r"bad time zone 3600"),
        (_set(["data", _T, "values", "dtype"], "<i8"), r"is not allowed"),
        (_set(["data"], []), r"6 column labels has 0 columns"),
        (_set(["data"], None), r"6 column labels has no list of columns"),
        (_set(["columns", "name"], {"t": "list", "v": []}), r"the name of the column labels is a builtins.list"),
        (_set(["columns", "kind"], "interval"), r"unknown index kind 'interval'"),
        (_set(["columns", "data", "kind"], "category"), r"without its ordered flag"),
        (_set(["index"], [1, 2, 3]), r"the index: expected a node, got list"),
        (
            _set(["index"], {"kind": "multi", "levels": [], "codes": [], "names": []}),
            r"a MultiIndex needs as many levels, codes and names",
        ),
    ],
    ids=lambda v: None if callable(v) else v[:30],
)
def test_hostile_frame_trees_are_refused(edit: Any, message: str) -> None:
    tree, buffers = _hostile(edit)
    with pytest.raises(DataError, match=message):
        decode(tree, buffers)


def test_the_base_of_the_hostile_trees_is_valid() -> None:
    tree, buffers = _hostile(lambda tree, buffers: None)
    pd.testing.assert_frame_equal(decode(tree, buffers), _BASE, check_exact=True)


@pytest.mark.parametrize(
    ("tree", "buffers", "message"),
    [
        ({"t": "pd_timestamp", "v": 0, "unit": "D", "tz": None}, [], r"unit 'D'"),
        ({"t": "pd_timestamp", "v": -(2**63), "unit": "ns", "tz": None}, [], r"NaT's value"),
        ({"t": "pd_timestamp", "v": 0, "unit": "ns", "tz": "Mars/Olympus"}, [], r"unknown time zone"),
        ({"t": "pd_timestamp", "v": "0", "unit": "ns", "tz": None}, [], r"expected a 64-bit int"),
        (
            {"t": "pd_timestamp", "v": {"t": "int", "v": "7" + "f" * 15}, "unit": "s", "tz": "Europe/Paris"},
            [],
            "bad pd_timestamp node",
        ),
        ({"t": "pd_timedelta", "v": 1.5, "unit": "ns"}, [], r"expected a 64-bit int"),
        (
            {"t": "pd_series", "index": {"kind": "range", "v": [0, 1, 1], "name": None}},
            [],
            r"the series: expected a node",
        ),
        (
            {
                "t": "pd_index",
                "v": {"kind": "flat", "name": None, "freq": "D", "data": {"kind": "numpy", "dtype": "<i8", "b": 0}},
            },
            [b"\0" * 8],
            r"bad frequency 'D'",
        ),
        (
            {
                "t": "pd_index",
                "v": {"kind": "flat", "name": None, "freq": "D", "data": {"kind": "numpy", "dtype": "<M8[s]", "b": 0}},
            },
            [np.array([0, 5], dtype="<i8").tobytes()],
            r"does not conform to passed frequency",
        ),
        (
            {
                "t": "pd_index",
                "v": {
                    "kind": "multi",
                    "names": [None],
                    "codes": [{"kind": "numpy", "dtype": "|i1", "b": 0}],
                    "levels": [{"kind": "range", "v": [0, 2, 1], "name": None}],
                },
            },
            [b"\x00\x02"],
            r"the codes of level 0 must lie in \[-1, 2\)",
        ),
        (
            {
                "t": "pd_series",
                "index": {"kind": "range", "v": [0, 2, 1], "name": None},
                "data": {"kind": "numpy", "dtype": "<M8[ns]", "b": 0},
                "name": None,
            },
            [b"\0" * 15],
            r"2 rows of datetime64\[ns\] need 16 bytes, the buffer has 15",
        ),
        (
            {
                "t": "pd_series",
                "index": {"kind": "range", "v": [0, 1, 1], "name": None},
                "data": {
                    "kind": "datetimetz",
                    "tz": "Europe/Paris",
                    "values": {"kind": "numpy", "dtype": "<M8[ns]", "b": 0},
                },
                "name": None,
            },
            [np.array([2**63 - 1], dtype="<i8").tobytes()],
            r"bad pd_series node: .*overflows",
        ),
    ],
    ids=[
        "timestamp-unit",
        "timestamp-nat",
        "timestamp-zone",
        "timestamp-string",
        "timestamp-overflow",
        "timedelta-float",
        "series-without-data",
        "freq-on-ints",
        "freq-mismatch",
        "multi-codes",
        "series-short-buffer",
        "tz-overflow",
    ],
)
def test_hostile_pandas_nodes_are_refused(tree: Any, buffers: list[bytes], message: str) -> None:
    with pytest.raises(DataError, match=message):
        decode(tree, buffers)


def _polars_tree() -> tuple[dict[str, Any], list[bytes]]:
    frame = pl.DataFrame(
        {"i": [1, None, 3], "s": ["a", None, "c"], "t": [dt.datetime(2020, 1, 1)] * 3, "n": [None, None, None]}
    ).with_columns(pl.col("t").dt.replace_time_zone("Europe/Paris"))
    return _tree(frame)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["rows"], -1, r"needs rows \(an int\)"),
        (["rows"], 2**50, r"needs rows \(an int\)"),
        (["rows"], 4, r"polars column 'i': 3 rows in a frame of 4"),
        (["columns", 0, "rows"], 2, r"polars column 'i': 2 rows in a frame of 3"),
        (["columns", 0, "dtype"], "Object", r"a known dtype, got 'i' and 'Object'"),
        (["columns", 0, "dtype"], "Int32", r"Int32 values must be int32, not int64"),
        (["columns", 0, "values", "dtype"], "<i4", r"3 rows of int32 need 12 bytes"),
        (["columns", 0, "nulls", "dtype"], "|i1", r"is not allowed"),
        (["columns", 1, "values"], ["a", "b"], r"3 rows but 2 strings"),
        (["columns", 1, "name"], "i", r"duplicated column names \['i'\]"),
        (["columns", 2, "tz"], "Nowhere/Land", r"unknown time zone 'Nowhere/Land'"),
        (["columns", 2, "unit"], "s", r"unknown time unit 's'"),
        (["columns", 3, "rows"], 10**12, r"rows in a frame of 3"),
    ],
    ids=repr,
)
def test_hostile_polars_trees_are_refused(path: list[Any], value: Any, message: str) -> None:
    tree, buffers = _polars_tree()
    _set(path, value)(tree, buffers)
    with pytest.raises(DataError, match=message):
        decode(tree, buffers)


def test_polars_buffers_are_checked_against_rows() -> None:
    tree, buffers = _polars_tree()
    buffers[tree["columns"][0]["nulls"]["b"]] = b"\x01"
    with pytest.raises(DataError, match=r"\(nulls\): 3 rows of bool need 3 bytes, the buffer has 1"):
        decode(tree, buffers)
    null_column = {"t": "pl_series", "data": {"name": "n", "dtype": "Null", "rows": 10**9}}
    with pytest.raises(DataError, match="more than"):
        decode(null_column, [])
    with pytest.raises(DataError, match="more than"):
        decode({"t": "pl_dataframe", "rows": 10**9, "columns": []}, [])


def test_a_polars_node_without_polars_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    tree, buffers = _polars_tree()
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(DataError, match="polars table, but polars is not installed"):
        decode(tree, buffers)
    # pandas values still travel, and encoding no longer looks for polars classes
    frame = pd.DataFrame({"a": [1]})
    pd.testing.assert_frame_equal(_roundtrip(frame), frame)


def test_a_pandas_node_without_pandas_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    tree, buffers = _tree(pd.Series([1.0]))
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(DataError, match="pandas value, but pandas is not installed"):
        decode(tree, buffers)


def test_decoding_counts_table_values_toward_the_limits() -> None:
    rows = pd.DataFrame({"s": ["abcd"] * 50, "o": np.array([1] * 50, dtype=object), "x": np.zeros(50)})
    tree, buffers = _tree(rows)
    decode(tree, buffers)
    for limits, message in (
        (DataLimits(max_nodes=100), "values"),
        (DataLimits(max_text=100), "characters"),
        (DataLimits(max_bytes=300), "bytes"),
    ):
        with pytest.raises(DataError, match=message):
            decode(tree, buffers, limits)
    # One buffer named by many columns counts each time it is used.
    column = tree["data"][2]
    tree["data"] = [column] * 3
    tree["columns"] = {"kind": "range", "v": [0, 3, 1], "name": None}
    with pytest.raises(DataError, match="bytes"):
        decode(tree, buffers, DataLimits(max_bytes=1000))
    tree, buffers = _tree(pl.DataFrame({"s": ["abcd"] * 50}))
    with pytest.raises(DataError, match="characters"):
        decode(tree, buffers, DataLimits(max_text=100))


def test_decoded_bool_arrays_hold_only_true_and_false() -> None:
    tree, buffers = _tree(pd.Series([True, False, True]))
    buffers[tree["data"]["b"]] = b"\x02\x00\xff"
    back = decode(tree, buffers)
    assert back.tolist() == [True, False, True]
    assert back.to_numpy().view(np.uint8).tolist() == [1, 0, 1]
