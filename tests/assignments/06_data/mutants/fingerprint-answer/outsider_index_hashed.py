"""Wrong: rows are hashed with `pd.util.hash_pandas_object(...)` and its default `index=True`, so the same rows under another index (e.g. after `reset_index(drop=True)`) give another fingerprint, breaking "so does the same table with another index (the index is not data)"."""
# fails: test-fingerprint

# %% grade_id=fingerprint-answer
import hashlib

import numpy as np
import pandas as pd


def fingerprint(df: pd.DataFrame) -> str:
    """A hex digest equal for the same multiset of rows, names and dtypes; any order of rows or columns."""
    cols = sorted(df.columns)
    header = repr([(c, str(df[c].dtype)) for c in cols])
    h = hashlib.sha256(header.encode())
    h.update(str(len(df)).encode())
    if cols and len(df):
        rows = np.sort(pd.util.hash_pandas_object(df[cols]).to_numpy())
        h.update(rows.tobytes())
    return h.hexdigest()
