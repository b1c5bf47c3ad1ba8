"""Wrong: each column is hashed on its own (its sorted values), so the pairing of values into rows is lost, breaking "so does moving a value from one row to another (two rows `(1, "a"), (2, "b")` are not `(1, "b"), (2, "a")`)"."""
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
    h = hashlib.sha256(str(len(df)).encode())
    for c in cols:
        values = sorted(repr(v) for v in _fp_column(df[c]))
        h.update(repr((c, str(df[c].dtype), values)).encode())
    return h.hexdigest()
