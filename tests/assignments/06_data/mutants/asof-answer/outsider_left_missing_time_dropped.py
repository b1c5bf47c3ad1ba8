"""Wrong: left rows with a missing time are dropped before the join and never put back, so the result is shorter than `left`, breaking "A left row with a missing time ... gets missing values in the right's columns" and "The result has `left`'s rows"."""
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
    L = left.reset_index(drop=True).copy()
    L["__pos"] = np.arange(len(L))
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
    out = L.merge(m[["__pos", *rcols]], on="__pos", how="inner").sort_values("__pos")
    out = out[[*left.columns, *rcols]]
    out.index = left.index[L.loc[L[left_on].notna(), "__pos"].to_numpy()]
    return out
