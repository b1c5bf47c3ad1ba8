"""Wrong: `left` is sorted by time with its index kept and the result is put back with `sort_index()`, which gives `left`'s order only when `left`'s index is increasing, breaking "The result has `left`'s rows **in `left`'s order and with `left`'s index**"."""
# fails: test-asof

# %% grade_id=asof-answer
import numpy as np
import pandas as pd


def asof_join(
    left: pd.DataFrame, right: pd.DataFrame, left_on: str, right_on: str, by=None, max_age=None
) -> pd.DataFrame:
    """Each left row with the latest right row (same ``by``) at or before its time, within ``max_age``."""
    if max_age is not None and max_age < max_age * 0:
        raise ValueError("max_age is negative")
    bys = None if by is None else ([by] if isinstance(by, str) else list(by))
    L = left.copy()
    R = right[right[right_on].notna()].copy()
    R["__rpos"] = np.arange(len(R))
    R = R.sort_values([right_on, "__rpos"], kind="mergesort")
    Lv = L[L[left_on].notna()].sort_values(left_on, kind="mergesort")
    m = pd.merge_asof(
        Lv,
        R,
        left_on=left_on,
        right_on=right_on,
        by=bys,
        tolerance=max_age,
        allow_exact_matches=True,
        direction="backward",
    )
    rcols = [c for c in right.columns if bys is None or c not in bys]
    m.index = Lv.index
    out = pd.concat([m, L[L[left_on].isna()]]).sort_index()
    out = out[[*left.columns, *rcols]]
    return out
