"""Wrong: ties on `order_by` are broken only by the numeric columns (strings and other columns are left out of the sort to avoid comparing them), so two versions that differ only in a string column are decided by row order, breaking "break ties by every column in `df`'s column order ... never by their position"."""
# fails: test-dedup

# %% grade_id=dedup-answer
import pandas as pd


def dedup_latest(df: pd.DataFrame, keys, order_by: str) -> pd.DataFrame:
    """One row per key: the latest by ``order_by``, ties broken by content; sorted by ``keys``."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("keys is empty")
    for c in [*keys, order_by]:
        if c not in df.columns:
            raise KeyError(c)
    numeric = [
        c
        for c in df.columns
        if c != order_by and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
    ]
    ordered = df.sort_values([order_by, *numeric], na_position="first", kind="mergesort")
    last = ordered.drop_duplicates(keys, keep="last")
    return last.sort_values(keys, na_position="last", kind="mergesort").reset_index(drop=True)
