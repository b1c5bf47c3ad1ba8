"""Wrong: the tie-breaking sort is done in place on `df` (`inplace=True`), so the caller's table comes back reordered with a new index, breaking "`df` itself is left unchanged"."""
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
    df.sort_values(by, na_position="first", kind="mergesort", inplace=True)
    last = df.drop_duplicates(keys, keep="last")
    return last.sort_values(keys, na_position="last", kind="mergesort").reset_index(drop=True)
