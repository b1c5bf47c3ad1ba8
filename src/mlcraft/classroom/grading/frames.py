"""pandas and polars values in the grading codec (:mod:`mlcraft.classroom.grading.protocol`).

:mod:`protocol` imports this module only when it meets a pandas or polars value, or decodes one
of their nodes; pandas and polars are imported only then too (polars is optional: a polars node
without polars installed is a :class:`DataError`). Numbers travel in buffers, so ``max_bytes``
counts them; strings and object elements travel in the tree and count as values and text. Only
the exact pandas and polars classes travel: a subclass (``pandera.typing.DataFrame``, say) is
refused, since what it adds would not survive the trip.

Nodes (``AXIS`` and ``COLUMN`` are plain dicts inside them, each counted as a value)::

    {"t": "pd_dataframe", "index": AXIS, "columns": AXIS, "data": [COLUMN, ...], "nodup"?: true}
    {"t": "pd_series", "index": AXIS, "data": COLUMN, "name": LABEL, "nodup"?: true}
    {"t": "pd_index", "v": AXIS}
    {"t": "pd_timestamp", "v": INT, "unit": "s|ms|us|ns", "tz": ZONE | null}   (v: since the epoch, UTC)
    {"t": "pd_timedelta", "v": INT, "unit": "s|ms|us|ns"}
    {"t": "pd_nat"}, {"t": "pd_na"}
    {"t": "pl_dataframe", "rows": n, "columns": [PLCOL, ...]}
    {"t": "pl_series", "data": PLCOL}

    AXIS:   {"kind": "range", "v": [start, stop, step], "name": LABEL}
            {"kind": "flat", "data": COLUMN, "name": LABEL, "freq"?: "D"}
            {"kind": "multi", "levels": [AXIS, ...], "codes": [NUMPY int, ...], "names": [LABEL, ...]}
    COLUMN: NUMPY = {"kind": "numpy", "dtype": "<f8", "b": i}      bool, int, uint, float, M8/m8[s|ms|us|ns]
            {"kind": "datetimetz", "tz": ZONE, "values": NUMPY M8}  (wall clock in UTC; NaT as NumPy's)
            {"kind": "masked", "dtype": "Int64|...|Float64|boolean", "values": NUMPY, "mask": NUMPY bool}
            {"kind": "string", "storage": "python|pyarrow", "na": "NA|nan", "v": [str | null, ...]}
            {"kind": "category", "ordered": bool, "categories": COLUMN, "codes": NUMPY int}
            {"kind": "object", "v": [tree, ...]}   None, bool, int, float, str, Timestamp, NaT, NA
    PLCOL:  {"name": str, "dtype": "Int64|...", "rows": n, "values"?: NUMPY | [str | null, ...],
             "nulls"?: NUMPY bool, "unit"?: "ns|us|ms", "tz"?: ZONE | null}

``LABEL`` is a tree holding ``None``, ``bool``, ``int``, ``float``, ``str`` (NumPy scalars of those,
``Timestamp``, ``Timedelta`` and ``NaT`` too) or a flat tuple of them; ``ZONE`` is ``"UTC"``, a fixed
offset ``"+05:30"`` or an IANA key (``zoneinfo.ZoneInfo`` on arrival). Polars categoricals travel
as their strings and come back as ``pl.Categorical``. The length of every column is checked
against the frame's row count (the index's length) and against its buffer's size or list's length.
"""

from __future__ import annotations

import datetime
import re
import sys
import zoneinfo
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcraft.classroom.grading.protocol import DataError

if TYPE_CHECKING:
    from mlcraft.classroom.grading.protocol import _Decoder, _Encoder

__all__ = ["decode_node", "encode_value"]

_UNITS = ("s", "ms", "us", "ns")
_INT64 = (-(2**63), 2**63)
# pandas' nullable dtypes: name -> NumPy dtype of the values under the mask
_MASKED = {
    **{f"Int{b}": f"i{b // 8}" for b in (8, 16, 32, 64)},
    **{f"UInt{b}": f"u{b // 8}" for b in (8, 16, 32, 64)},
    "Float32": "f4",
    "Float64": "f8",
    "boolean": "?",
}
# polars dtypes that travel -> NumPy dtype of their physical values (None: no buffer)
_POLARS = {
    **{f"Int{b}": f"i{b // 8}" for b in (8, 16, 32, 64)},
    **{f"UInt{b}": f"u{b // 8}" for b in (8, 16, 32, 64)},
    "Float32": "f4",
    "Float64": "f8",
    "Boolean": "?",
    "Date": "i4",
    "Datetime": "i8",
    "Duration": "i8",
    "String": None,
    "Categorical": None,
    "Null": None,
}
_OBJECTS = "None, bool, int, float, str, pandas.Timestamp, NaT and NA"
_LABELS = "None, bool, int, float, str, a Timestamp or a tuple of them"
_OFFSET = re.compile(r"([+-])(\d\d):(\d\d)")
_ZONE_KEY = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise DataError("a pandas value, but pandas is not installed here") from None
    return pandas


def _polars() -> Any:
    try:
        import polars
    except ImportError:
        raise DataError("a polars table, but polars is not installed here") from None
    return polars


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


# --- time zones -------------------------------------------------------------------------------
def _zone_name(tz: Any, where: str) -> str:
    if isinstance(tz, zoneinfo.ZoneInfo) and tz.key:
        return str(tz.key)
    if isinstance(tz, datetime.timezone):
        offset = tz.utcoffset(None)
        minutes, rest = divmod(offset, datetime.timedelta(minutes=1))
        if not rest:
            if not minutes:
                return "UTC"
            hours, minutes = divmod(abs(minutes), 60)
            return f"{'-' if offset < datetime.timedelta(0) else '+'}{hours:02}:{minutes:02}"
    zone = getattr(tz, "zone", None)  # pytz: arrives as the zoneinfo zone of that name
    if type(tz).__module__.startswith("pytz") and isinstance(zone, str):
        return zone
    raise DataError(f"{where}: the time zone {_short(tz)} cannot be sent (use zoneinfo, 'UTC' or a fixed offset)")


def _zone(text: Any, where: str) -> datetime.tzinfo:
    if type(text) is not str or not 0 < len(text) <= 64:
        raise DataError(f"{where}: bad time zone {_short(text)}")
    if text == "UTC":
        return datetime.UTC
    offset = _OFFSET.fullmatch(text)
    if offset:
        sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3))
        if hours > 23 or minutes > 59:
            raise DataError(f"{where}: bad time zone offset {text!r}")
        delta = datetime.timedelta(hours=hours, minutes=minutes)
        return datetime.timezone(-delta if sign == "-" else delta)
    if not _ZONE_KEY.fullmatch(text):
        raise DataError(f"{where}: {_short(text)} is not a time zone")
    try:
        return zoneinfo.ZoneInfo(text)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise DataError(f"{where}: unknown time zone {text!r}") from None


# --- encoding -----------------------------------------------------------------------------------
def encode_value(enc: _Encoder, value: Any, depth: int) -> dict[str, Any] | None:
    """The node for a pandas or polars value, or ``None`` when ``value`` is neither.

    Raises:
        DataError: for a subclass of a pandas or polars class, a dtype or element that cannot be
            sent, or a value past the limits.
    """
    pd = sys.modules.get("pandas")
    node = _encode_pandas(enc, pd, value, depth) if pd is not None else None
    if node is None and sys.modules.get("polars") is not None:
        node = _encode_polars(enc, sys.modules["polars"], value, depth)
    return node


def _encode_pandas(enc: _Encoder, pd: Any, value: Any, depth: int) -> dict[str, Any] | None:
    kind = type(value)
    if kind is pd.DataFrame:
        node: dict[str, Any] = {
            "t": "pd_dataframe",
            "index": _axis(enc, pd, value.index, depth, "the index"),
            "columns": _axis(enc, pd, value.columns, depth, "the column labels"),
            "data": [
                _column(enc, pd, value.iloc[:, i], depth, f"column {_short(label)}")
                for i, label in enumerate(value.columns)
            ],
        }
    elif kind is pd.Series:
        node = {
            "t": "pd_series",
            "index": _axis(enc, pd, value.index, depth, "the index"),
            "data": _column(enc, pd, value, depth, "the series"),
            "name": _label(enc, pd, value.name, depth, "the series name"),
        }
    elif kind in (pd.Index, pd.RangeIndex, pd.DatetimeIndex, pd.TimedeltaIndex, pd.CategoricalIndex, pd.MultiIndex):
        return {"t": "pd_index", "v": _axis(enc, pd, value, depth, "the index")}
    elif kind is pd.Timestamp:
        return {
            "t": "pd_timestamp",
            "v": enc.encode(int(value.to_datetime64().astype(np.int64)), depth + 1),
            "unit": value.unit,
            "tz": None if value.tz is None else _zone_name(value.tz, "a Timestamp"),
        }
    elif kind is pd.Timedelta:
        return {
            "t": "pd_timedelta",
            "v": enc.encode(int(value.to_timedelta64().astype(np.int64)), depth + 1),
            "unit": value.unit,
        }
    elif value is pd.NaT:
        return {"t": "pd_nat"}
    elif value is pd.NA:
        return {"t": "pd_na"}
    else:
        for base in (pd.DataFrame, pd.Series, pd.Index, pd.Timestamp, pd.Timedelta):
            if isinstance(value, base):
                if kind.__module__.split(".")[0] == "pandas":
                    raise DataError(f"a pandas.{kind.__name__} cannot be sent as data")
                raise DataError(
                    f"a {_type_name(value)} (a subclass of pandas.{base.__name__}) cannot be sent as data: "
                    f"convert it with pandas.{base.__name__}(value)"
                )
        return None
    if not value.flags.allows_duplicate_labels:
        node["nodup"] = True
    return node


def _label(enc: _Encoder, pd: Any, label: Any, depth: int, where: str) -> Any:
    if not _is_label(pd, label, tuples=True):
        raise DataError(f"{where} is a {_type_name(label)}; labels may be {_LABELS}")
    return enc.encode(label, depth + 2)


def _is_label(pd: Any, label: Any, tuples: bool) -> bool:
    kind = type(label)
    if label is None or kind in (bool, int, float, str, pd.Timestamp, pd.Timedelta) or label is pd.NaT:
        return True
    if isinstance(label, np.bool_ | np.integer | np.floating):
        return kind.__module__ == "numpy"
    return tuples and kind is tuple and all(_is_label(pd, item, tuples=False) for item in label)


def _axis(enc: _Encoder, pd: Any, index: Any, depth: int, where: str) -> dict[str, Any]:
    enc.add_nodes(1)
    kind = type(index)
    if kind is pd.MultiIndex:
        return {
            "kind": "multi",
            "levels": [_axis(enc, pd, level, depth, f"{where} (level {i})") for i, level in enumerate(index.levels)],
            "codes": [_numpy(enc, np.asarray(codes), f"{where} (codes)") for codes in index.codes],
            "names": [_label(enc, pd, name, depth, f"a name of {where}") for name in index.names],
        }
    name = _label(enc, pd, index.name, depth, f"the name of {where}")
    if kind is pd.RangeIndex:
        return {
            "kind": "range",
            "v": [enc.encode(v, depth + 2) for v in (index.start, index.stop, index.step)],
            "name": name,
        }
    if kind not in (pd.Index, pd.DatetimeIndex, pd.TimedeltaIndex, pd.CategoricalIndex):
        raise DataError(f"{where}: a {_type_name(index)} cannot be sent")
    node = {"kind": "flat", "data": _column(enc, pd, index, depth, where, labels=True), "name": name}
    if kind in (pd.DatetimeIndex, pd.TimedeltaIndex) and index.freq is not None:
        node["freq"] = index.freqstr
    return node


def _numpy(enc: _Encoder, array: np.ndarray, where: str) -> dict[str, Any]:
    dtype = array.dtype
    if dtype.kind in "mM":
        unit, count = np.datetime_data(dtype)
        if unit not in _UNITS or count != 1:
            raise DataError(f"{where} has dtype {dtype}: only the units s, ms, us and ns travel")
    elif dtype.kind not in "biuf" or (dtype.kind == "f" and dtype.itemsize > 8):
        raise DataError(f"{where} has dtype {dtype}, which cannot be sent")
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    enc.add_nodes(1)
    return {"kind": "numpy", "dtype": array.dtype.str, "b": enc.buffer(np.ascontiguousarray(array).tobytes())}


def _column(enc: _Encoder, pd: Any, values: Any, depth: int, where: str, labels: bool = False) -> dict[str, Any]:
    """A Series' or an Index's values."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind != "O":
        return _numpy(enc, values.to_numpy(), where)
    enc.add_nodes(1)  # as many values as decoding counts
    if isinstance(dtype, np.dtype):
        return _objects(enc, pd, values, depth, where, labels)
    if type(dtype) is pd.DatetimeTZDtype:
        utc = np.asarray(values.array.tz_convert("UTC").tz_localize(None))
        return {"kind": "datetimetz", "tz": _zone_name(dtype.tz, where), "values": _numpy(enc, utc, where)}
    name = getattr(dtype, "name", None)
    if name in _MASKED and type(dtype) is _masked_dtype(pd, name):
        numpy_dtype = np.dtype(_MASKED[name])
        return {
            "kind": "masked",
            "dtype": name,
            "values": _numpy(enc, values.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype.type(0)), where),
            "mask": _numpy(enc, np.asarray(values.isna(), dtype=bool), where),
        }
    if type(dtype) is pd.StringDtype:
        missing = np.asarray(values.isna(), dtype=bool).tolist()
        strings = [None if gone else s for s, gone in zip(values.to_numpy(dtype=object).tolist(), missing, strict=True)]
        enc.add_nodes(len(strings))
        enc.add_text(sum(len(s) for s in strings if s is not None))
        na = "NA" if getattr(dtype, "na_value", pd.NA) is pd.NA else "nan"
        return {"kind": "string", "storage": str(dtype.storage), "na": na, "v": strings}
    if type(dtype) is pd.CategoricalDtype:
        return {
            "kind": "category",
            "ordered": bool(dtype.ordered),
            "categories": _column(enc, pd, dtype.categories, depth, f"the categories of {where}"),
            "codes": _numpy(enc, np.asarray(values.array.codes), where),
        }
    raise DataError(
        f"{where} has dtype {dtype}, which cannot be sent (NumPy numbers, booleans, datetimes and timedeltas, "
        "datetimes with a time zone, nullable numbers, strings, categories and objects can)"
    )


def _masked_dtype(pd: Any, name: str) -> Any:
    return pd.BooleanDtype if name == "boolean" else getattr(pd, f"{name}Dtype")


def _objects(enc: _Encoder, pd: Any, values: Any, depth: int, where: str, labels: bool) -> dict[str, Any]:
    items = np.asarray(values, dtype=object).tolist()
    for row, item in enumerate(items):
        if not _is_element(pd, item, labels):
            raise DataError(
                f"{where} (dtype object) holds a {_type_name(item)} at position {row}: object columns may hold "
                f"only {_OBJECTS}{' (and tuples of them, as labels)' if labels else ''}"
            )
    return {"kind": "object", "v": [enc.encode(item, depth + 2) for item in items]}


def _is_element(pd: Any, item: Any, tuples: bool) -> bool:
    kind = type(item)
    if item is None or kind in (bool, int, float, str, pd.Timestamp) or item is pd.NaT or item is pd.NA:
        return True
    return tuples and kind is tuple and all(_is_element(pd, part, tuples=False) for part in item)


def _encode_polars(enc: _Encoder, pl: Any, value: Any, depth: int) -> dict[str, Any] | None:
    kind = type(value)
    if kind is pl.DataFrame:
        columns = [_polars_column(enc, pl, series) for series in value.get_columns()]
        if not columns:
            enc.add_nodes(value.height)  # rows no buffer stands for count as values
        return {"t": "pl_dataframe", "rows": value.height, "columns": columns}
    if kind is pl.Series:
        return {"t": "pl_series", "data": _polars_column(enc, pl, value)}
    if kind is pl.LazyFrame:
        raise DataError("a polars.LazyFrame cannot be sent as data: collect() it first")
    for base in (pl.DataFrame, pl.Series):
        if isinstance(value, base):
            raise DataError(
                f"a {_type_name(value)} (a subclass of polars.{base.__name__}) cannot be sent as data: "
                f"convert it with polars.{base.__name__}(value)"
            )
    return None


def _polars_column(enc: _Encoder, pl: Any, series: Any) -> dict[str, Any]:
    enc.add_nodes(1)
    enc.add_text(len(series.name))
    dtype = series.dtype
    name = type(dtype).__name__
    where = f"polars column {_short(series.name)}"
    if name not in _POLARS or type(dtype) is not getattr(pl, name):
        raise DataError(
            f"{where} has dtype {dtype}, which cannot be sent (integers, floats, booleans, strings, "
            "categoricals, dates, datetimes, durations and nulls can)"
        )
    node: dict[str, Any] = {"name": series.name, "dtype": name, "rows": len(series)}
    if name in ("Datetime", "Duration"):
        node["unit"] = dtype.time_unit
    if name == "Datetime":
        node["tz"] = dtype.time_zone
        if dtype.time_zone is not None:
            _zone(dtype.time_zone, where)
    if name == "Null":
        enc.add_nodes(len(series))
    elif _POLARS[name] is None:  # strings and categoricals
        strings = series.cast(pl.String).to_list()
        enc.add_nodes(len(strings))
        enc.add_text(sum(len(s) for s in strings if s is not None))
        node["values"] = strings
    else:
        physical = series.to_physical()
        if physical.null_count():
            node["nulls"] = _numpy(enc, physical.is_null().to_numpy(), where)
            physical = physical.fill_null(False if name == "Boolean" else 0)
        node["values"] = _numpy(enc, physical.to_numpy(), where)
    return node


# --- decoding: the trusted side -------------------------------------------------------------
def decode_node(dec: _Decoder, node: dict[str, Any], depth: int) -> Any:
    """The fresh pandas or polars value a ``pd_*`` or ``pl_*`` node stands for.

    Raises:
        DataError: when the node is malformed, inconsistent with its buffers, past the limits,
            or needs pandas or polars where they are not installed.
    """
    tag = node["t"]
    if tag.startswith("pl_"):
        pl = _polars()
        try:
            if tag == "pl_series":
                return _decode_polars_column(dec, pl, node.get("data"), None, "the polars series")
            return _decode_polars_frame(dec, pl, node)
        except DataError:
            raise
        except (pl.exceptions.PolarsError, ValueError, TypeError, OverflowError) as err:
            raise DataError(f"bad {tag} node: {str(err)[:200]}") from None
    pd = _pandas()
    try:
        if tag == "pd_dataframe":
            return _decode_frame(dec, pd, node, depth)
        if tag == "pd_series":
            index = _decode_axis(dec, pd, node.get("index"), depth, "the index")
            values = _decode_column(dec, pd, node.get("data"), depth, len(index), "the series")
            name = _decode_label(dec, pd, node.get("name"), depth, "the series name")
            series = pd.Series(values, index=index, name=name, dtype=values.dtype, copy=False)
            return series.set_flags(allows_duplicate_labels=False) if node.get("nodup") is True else series
        if tag == "pd_index":
            return _decode_axis(dec, pd, node.get("v"), depth, "the index")
        if tag == "pd_timestamp":
            return _decode_time(dec, pd, node, depth, "Timestamp")
        if tag == "pd_timedelta":
            return _decode_time(dec, pd, node, depth, "Timedelta")
        return pd.NaT if tag == "pd_nat" else pd.NA
    except DataError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, NotImplementedError) as err:  # pandas refusing
        raise DataError(f"bad {tag} node: {str(err)[:200]}") from None


def _decode_frame(dec: _Decoder, pd: Any, node: dict[str, Any], depth: int) -> Any:
    index = _decode_axis(dec, pd, node.get("index"), depth, "the index")
    columns = _decode_axis(dec, pd, node.get("columns"), depth, "the column labels")
    data = node.get("data")
    if type(data) is not list or len(data) != len(columns):
        count = len(data) if type(data) is list else "no list of"
        raise DataError(f"a DataFrame with {len(columns)} column labels has {count} columns")
    series = []
    for i, column in enumerate(data):
        values = _decode_column(dec, pd, column, depth, len(index), f"column {i} ({_short(columns[i])})")
        series.append(pd.Series(values, index=index, dtype=values.dtype, copy=False))
    frame = pd.DataFrame(dict(enumerate(series)), copy=False) if series else pd.DataFrame(index=index)
    frame.columns = columns
    return frame.set_flags(allows_duplicate_labels=False) if node.get("nodup") is True else frame


def _node(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise DataError(f"{where}: expected a node, got {type(value).__name__}")
    return value


def _int(dec: _Decoder, tree: Any, depth: int, where: str) -> int:
    value = dec.decode(tree, depth + 1)
    if type(value) is not int or not _INT64[0] <= value < _INT64[1]:
        raise DataError(f"{where}: expected a 64-bit int, got {_short(value)}")
    return value


def _decode_label(dec: _Decoder, pd: Any, tree: Any, depth: int, where: str) -> Any:
    label = dec.decode(tree, depth + 2)
    if not _is_label(pd, label, tuples=True):
        raise DataError(f"{where} is a {_type_name(label)}; labels may be {_LABELS}")
    return label


def _decode_axis(dec: _Decoder, pd: Any, tree: Any, depth: int, where: str, multi: bool = True) -> Any:
    node = _node(tree, where)
    dec.add_nodes(1)
    kind = node.get("kind")
    if kind == "multi" and multi:
        levels, codes, names = node.get("levels"), node.get("codes"), node.get("names")
        if not (
            type(levels) is type(codes) is type(names) is list and 0 < len(levels) == len(codes) == len(names) <= 64
        ):
            raise DataError(f"{where}: a MultiIndex needs as many levels, codes and names (1 to 64)")
        levels = [
            _decode_axis(dec, pd, level, depth, f"{where} (level {i})", multi=False) for i, level in enumerate(levels)
        ]
        rows = None
        decoded_codes = []
        for i, level_codes in enumerate(codes):
            array = _decode_numpy(dec, level_codes, rows, f"{where} (codes of level {i})", kinds="iu")
            rows = len(array)
            if len(array) and (array.min() < -1 or array.max() >= len(levels[i])):
                raise DataError(f"{where}: the codes of level {i} must lie in [-1, {len(levels[i])})")
            decoded_codes.append(array)
        names = [_decode_label(dec, pd, name, depth, f"a name of {where}") for name in names]
        return pd.MultiIndex(levels=levels, codes=decoded_codes, names=names, verify_integrity=True)
    name = _decode_label(dec, pd, node.get("name"), depth, f"the name of {where}")
    if kind == "range":
        parts = node.get("v")
        if type(parts) is not list or len(parts) != 3:
            raise DataError(f"{where}: a RangeIndex needs [start, stop, step]")
        start, stop, step = (_int(dec, part, depth, where) for part in parts)
        if step == 0:
            raise DataError(f"{where}: a RangeIndex with step 0")
        return pd.RangeIndex(start, stop, step, name=name)
    if kind != "flat":
        raise DataError(f"{where}: unknown index kind {_short(kind)}")
    values = _decode_column(dec, pd, node.get("data"), depth, None, where, labels=True)
    index = pd.Index(values, dtype=values.dtype, name=name, copy=False, tupleize_cols=False)
    freq = node.get("freq")
    if freq is not None:
        if type(freq) is not str or len(freq) > 32 or type(index) not in (pd.DatetimeIndex, pd.TimedeltaIndex):
            raise DataError(f"{where}: bad frequency {_short(freq)}")
        index = type(index)(index, freq=freq, name=name)
    return index


def _decode_numpy(dec: _Decoder, tree: Any, rows: int | None, where: str, kinds: str = "biufmM") -> np.ndarray:
    node = _node(tree, where)
    dec.add_nodes(1)
    text = node.get("dtype")
    if node.get("kind") != "numpy" or type(text) is not str or len(text) > 16:
        raise DataError(f"{where}: bad numeric column node")
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError):
        raise DataError(f"{where}: unknown dtype {text!r}") from None
    ok = dtype.kind in kinds and dtype.isnative and dtype.fields is None and dtype.subdtype is None
    if dtype.kind in "mM":
        ok = ok and np.datetime_data(dtype) in [(unit, 1) for unit in _UNITS]
    if not ok or (dtype.kind == "f" and dtype.itemsize > 8):
        raise DataError(f"{where}: dtype {text!r} is not allowed here")
    data = dec.buffer(node)
    if rows is None:
        if len(data) % dtype.itemsize:
            raise DataError(f"{where}: {len(data)} bytes is not a whole number of {dtype} values")
    elif len(data) != rows * dtype.itemsize:
        raise DataError(
            f"{where}: {rows} rows of {dtype} need {rows * dtype.itemsize} bytes, the buffer has {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype).copy()
    return array.view(np.uint8) != 0 if dtype.kind == "b" else array  # only 0 and 1 in a bool array


def _decode_column(
    dec: _Decoder, pd: Any, tree: Any, depth: int, rows: int | None, where: str, labels: bool = False
) -> Any:
    """The values of one column: a NumPy array or a pandas extension array, ``rows`` long."""
    node = _node(tree, where)
    kind = node.get("kind")
    if kind == "numpy":
        return _decode_numpy(dec, node, rows, where)
    dec.add_nodes(1)
    if kind == "datetimetz":
        zone = _zone(node.get("tz"), where)
        utc = _decode_numpy(dec, node.get("values"), rows, where, kinds="M")
        values = pd.array(utc).tz_localize("UTC").tz_convert(zone)
        values.tz_localize(None)  # every wall-clock time can be computed (no overflow near the bounds)
        return values
    if kind == "masked":
        name = node.get("dtype")
        if name not in _MASKED:
            raise DataError(f"{where}: unknown nullable dtype {_short(name)}")
        values = _decode_numpy(dec, node.get("values"), rows, where)
        mask = _decode_numpy(dec, node.get("mask"), len(values), f"{where} (mask)", kinds="b")
        if values.dtype != np.dtype(_MASKED[name]):
            raise DataError(f"{where}: {name} values must be {np.dtype(_MASKED[name])}, not {values.dtype}")
        cls = {"b": pd.arrays.BooleanArray, "f": pd.arrays.FloatingArray}.get(values.dtype.kind, pd.arrays.IntegerArray)
        return cls(values, mask)
    if kind == "string":
        storage, na = node.get("storage"), node.get("na")
        if storage not in ("python", "pyarrow") or na not in ("NA", "nan"):
            raise DataError(f"{where}: bad string dtype ({_short(storage)}, {_short(na)})")
        strings = _strings(dec, node.get("v"), rows, where)
        try:
            dtype = pd.StringDtype(storage) if na == "NA" else pd.StringDtype(storage, na_value=np.nan)
        except ImportError:
            raise DataError(f"{where}: strings stored in pyarrow, but pyarrow is not installed here") from None
        return pd.array(strings, dtype=dtype)
    if kind == "category":
        ordered = node.get("ordered")
        if type(ordered) is not bool:
            raise DataError(f"{where}: a category column without its ordered flag")
        inner = _node(node.get("categories"), f"the categories of {where}")
        if inner.get("kind") == "category":
            raise DataError(f"{where}: categories that are themselves categorical")
        categories = _decode_column(dec, pd, inner, depth, None, f"the categories of {where}")
        codes = _decode_numpy(dec, node.get("codes"), rows, f"{where} (codes)", kinds="i")
        if len(codes) and (codes.min() < -1 or codes.max() >= len(categories)):
            raise DataError(f"{where}: category codes must lie in [-1, {len(categories)})")
        index = pd.Index(categories, dtype=categories.dtype, copy=False)
        return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(index, ordered=ordered))
    if kind == "object":
        items = node.get("v")
        if type(items) is not list or (rows is not None and len(items) != rows):
            count = len(items) if type(items) is list else "no list of"
            raise DataError(f"{where}: {rows} rows but {count} values")
        array = np.empty(len(items), dtype=object)
        for row, tree in enumerate(items):
            item = dec.decode(tree, depth + 2)
            if not _is_element(pd, item, labels):
                raise DataError(f"{where}: a {_type_name(item)} at position {row}; objects may be only {_OBJECTS}")
            array[row] = item
        return array
    raise DataError(f"{where}: unknown column kind {_short(kind)}")


def _strings(dec: _Decoder, items: Any, rows: int | None, where: str) -> list[str | None]:
    if type(items) is not list or (rows is not None and len(items) != rows):
        count = len(items) if type(items) is list else "no list of"
        raise DataError(f"{where}: {rows} rows but {count} strings")
    dec.add_nodes(len(items))
    text = 0
    for item in items:
        if type(item) is str:
            text += len(item)
        elif item is not None:
            raise DataError(f"{where}: a {type(item).__name__} among the strings")
    dec.add_text(text)
    return items


def _decode_time(dec: _Decoder, pd: Any, node: dict[str, Any], depth: int, what: str) -> Any:
    unit = node.get("unit")
    if unit not in _UNITS:
        raise DataError(f"a {what} with unit {_short(unit)}; units may be {', '.join(_UNITS)}")
    value = _int(dec, node.get("v"), depth, f"a {what}")
    if value == _INT64[0]:
        raise DataError(f"a {what} holding NaT's value (NaT travels as its own node)")
    if what == "Timedelta":
        return pd.Timedelta(np.timedelta64(value, unit))
    tz = node.get("tz")
    stamp = pd.Timestamp(np.datetime64(value, unit))
    return stamp if tz is None else stamp.tz_localize("UTC").tz_convert(_zone(tz, f"a {what}"))


def _decode_polars_frame(dec: _Decoder, pl: Any, node: dict[str, Any]) -> Any:
    rows, columns = node.get("rows"), node.get("columns")
    if type(rows) is not int or not 0 <= rows < 2**40 or type(columns) is not list:
        raise DataError("a polars DataFrame node needs rows (an int) and a list of columns")
    series = [_decode_polars_column(dec, pl, column, rows, f"polars column {i}") for i, column in enumerate(columns)]
    names = [s.name for s in series]
    if len(set(names)) != len(names):
        raise DataError(
            f"a polars DataFrame with duplicated column names {sorted({n for n in names if names.count(n) > 1})[:5]}"
        )
    if series:
        return pl.DataFrame(series)
    dec.add_nodes(rows)  # rows no buffer stands for count as values
    return pl.DataFrame(height=rows)


def _decode_polars_column(dec: _Decoder, pl: Any, tree: Any, rows: int | None, where: str) -> Any:
    node = _node(tree, where)
    dec.add_nodes(1)
    name, dtype, length = node.get("name"), node.get("dtype"), node.get("rows")
    if type(name) is not str or type(dtype) is not str or dtype not in _POLARS:
        raise DataError(f"{where}: needs a name and a known dtype, got {_short(name)} and {_short(dtype)}")
    dec.add_text(len(name))
    where = f"polars column {_short(name)}"
    if type(length) is not int or not 0 <= length < 2**40 or (rows is not None and length != rows):
        raise DataError(f"{where}: {_short(length)} rows in a frame of {rows}")
    if dtype == "Null":
        dec.add_nodes(length)  # rows no buffer stands for count as values
        return pl.Series(name, dtype=pl.Null).extend_constant(None, length)
    if _POLARS[dtype] is None:
        strings = _strings(dec, node.get("values"), length, where)
        series = pl.Series(name, strings, dtype=pl.String)
        return series.cast(pl.Categorical) if dtype == "Categorical" else series
    physical = np.dtype(_POLARS[dtype])
    values = _decode_numpy(dec, node.get("values"), length, where)
    if values.dtype != physical:
        raise DataError(f"{where}: {dtype} values must be {physical}, not {values.dtype}")
    series = pl.Series(name, values)
    if node.get("nulls") is not None:
        nulls = np.flatnonzero(_decode_numpy(dec, node["nulls"], length, f"{where} (nulls)", kinds="b"))
        if len(nulls):
            series = series.scatter(nulls, None)
    if dtype == "Date":
        return series.cast(pl.Date)
    if dtype in ("Datetime", "Duration"):
        unit = node.get("unit")
        if unit not in ("ms", "us", "ns"):
            raise DataError(f"{where}: unknown time unit {_short(unit)}")
        if dtype == "Duration":
            return series.cast(pl.Duration(unit))
        tz = node.get("tz")
        if tz is not None:
            _zone(tz, where)
        return series.cast(pl.Datetime(unit, tz))
    return series
