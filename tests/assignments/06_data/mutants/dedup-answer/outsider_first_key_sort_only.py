"""Wrong: the result is sorted by the first key column only, so with two or more key columns the rows that share the first key stay in the order of the input, breaking "its rows sorted by `keys` (the first key column first ...)" and "the result does not depend on the order of `df`'s rows"."""
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
    last = df.sort_values(by, na_position="first", kind="mergesort").drop_duplicates(keys, keep="last")
    last = last.sort_index()
    return last.sort_values(keys[0], na_position="last", kind="mergesort").reset_index(drop=True)
