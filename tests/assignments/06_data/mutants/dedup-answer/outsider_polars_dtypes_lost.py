"""Wrong: the work is done in polars and the result is returned with `.to_pandas()` without restoring `df`'s dtypes (a nullable `Int64` becomes `int64` or `float64`, `boolean` becomes `bool`/`object`), breaking "The result has the same columns in the same order with the same dtypes as `df`"."""
# fails: test-dedup

# %% grade_id=dedup-answer
import pandas as pd
import polars as pl


def dedup_latest(df: pd.DataFrame, keys, order_by: str) -> pd.DataFrame:
    """One row per key: the latest by ``order_by``, ties broken by content; sorted by ``keys``."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("keys is empty")
    for c in [*keys, order_by]:
        if c not in df.columns:
            raise KeyError(c)
    if len(df) == 0:
        return df.iloc[:0].reset_index(drop=True)
    p = pl.from_pandas(df)
    by = [order_by] + [c for c in df.columns if c != order_by]
    p = p.sort(by, nulls_last=False, maintain_order=True)
    p = p.unique(subset=keys, keep="last", maintain_order=True)
    p = p.sort(keys, nulls_last=True, maintain_order=True)
    return p.to_pandas()
