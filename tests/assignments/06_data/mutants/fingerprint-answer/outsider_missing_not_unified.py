"""Wrong: only float NaN and NaT are canonicalised; other columns hash `repr(value)`, so `None`, `NaN` and `pd.NA` in an object/string/bool column give different fingerprints, breaking "in any column `None`, `NaN`, `NaT` and `pd.NA` are the same missing value"."""
# fails: test-fingerprint

# %% grade_id=fingerprint-answer
import hashlib

import numpy as np
import pandas as pd


def _fp_column(s):
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype="float64", na_value=np.nan) + 0.0
        return [None if x != x else float(x) for x in v.tolist()]
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        v = s.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(s.dtype, "tz", None) else s
        miss = v.isna().to_numpy()
        ns = v.astype("datetime64[ns]").to_numpy().astype("int64")
        return [None if m else int(x) for x, m in zip(ns.tolist(), miss)]
    return [repr(x) for x in s.astype(object).tolist()]


def fingerprint(df: pd.DataFrame) -> str:
    """A hex digest equal for the same multiset of rows, names and dtypes; any order of rows or columns."""
    cols = sorted(df.columns)
    header = repr([(c, str(df[c].dtype)) for c in cols])
    columns = [_fp_column(df[c]) for c in cols]
    rows = sorted(hashlib.sha256(repr(r).encode()).digest() for r in zip(*columns)) if cols else []
    h = hashlib.sha256(header.encode())
    h.update(str(len(df)).encode())
    for r in rows:
        h.update(r)
    return h.hexdigest()
