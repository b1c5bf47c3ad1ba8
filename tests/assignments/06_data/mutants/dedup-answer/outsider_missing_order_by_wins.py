"""Wrong: rows are sorted with pandas' default `na_position="last"`, so a version with a missing `order_by` (or a missing value in a tie-breaking column) sorts after every value and wins, breaking "with **missing values sorting before any value** ... So a missing `order_by` loses to any present one"."""
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
    by = [order_by] + [c for c in df.columns if c != order_by]
    ordered = df.sort_values(by, kind="mergesort")
    last = ordered.drop_duplicates(keys, keep="last")
    return last.sort_values(keys, na_position="last", kind="mergesort").reset_index(drop=True)
