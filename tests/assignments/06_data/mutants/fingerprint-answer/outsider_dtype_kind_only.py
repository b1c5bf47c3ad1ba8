"""Wrong: a column's dtype enters the hash only as `dtype.kind` ("i", "f", "M"...) and datetimes as UTC nanoseconds, so `int32` vs `int64` and a time zone change nothing, breaking "changing ... any column's dtype (`int64` vs `float64` with equal values, `int32` vs `int64`, a time zone) ... changes the fingerprint"."""
# fails: test-fingerprint

# %% grade_id=fingerprint-answer
import hashlib

import numpy as np
import pandas as pd


def _fp_column(s):
    miss = s.isna().to_numpy()
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype="float64", na_value=np.nan) + 0.0
        vals = [None if m else float(x) for x, m in zip(v.tolist(), miss)]
    elif pd.api.types.is_datetime64_any_dtype(s.dtype):
        v = s.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(s.dtype, "tz", None) else s
        ns = v.astype("datetime64[ns]").to_numpy().astype("int64")
        vals = [None if m else int(x) for x, m in zip(ns.tolist(), miss)]
    else:
        vals = [None if m else x for x, m in zip(s.astype(object).tolist(), miss)]
        vals = [
            None if x is None else (type(x).__name__ if not isinstance(x, (bool, np.bool_)) else "bool", str(x))
            for x in vals
        ]
    return vals


def fingerprint(df: pd.DataFrame) -> str:
    """A hex digest equal for the same multiset of rows, names and dtypes; any order of rows or columns."""
    cols = sorted(df.columns)
    header = repr([(c, df[c].dtype.kind) for c in cols])
    columns = [_fp_column(df[c]) for c in cols]
    rows = sorted(hashlib.sha256(repr(r).encode()).digest() for r in zip(*columns)) if cols else []
    h = hashlib.sha256(header.encode())
    h.update(str(len(df)).encode())
    for r in rows:
        h.update(r)
    return h.hexdigest()
