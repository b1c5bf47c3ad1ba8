"""Wrong: missing key values are not checked, so pandas silently matches NaN keys with each other (and NaN keys never count as duplicates in the groupby), breaking "Raise `ValueError` if a key column holds a missing value in either table"."""
# fails: test-safe-merge

# %% grade_id=safe-merge-answer
import pandas as pd


def safe_merge(
    left: pd.DataFrame, right: pd.DataFrame, on, how: str = "left", validate: str = "many_to_one"
) -> pd.DataFrame:
    """``left.merge(right, on=on, how=how)`` after checking missing keys and the promised uniqueness."""
    keys = [on] if isinstance(on, str) else list(on)
    tables = {"left": left, "right": right}
    for name, t in tables.items():
        for k in keys:
            if k not in t.columns:
                raise KeyError(f"{name} has no column {k!r}")
    checks = {
        "one_to_one": ["left", "right"],
        "1:1": ["left", "right"],
        "one_to_many": ["left"],
        "1:m": ["left"],
        "many_to_one": ["right"],
        "m:1": ["right"],
        "many_to_many": [],
        "m:m": [],
    }[validate]
    for name in checks:
        t = tables[name]
        counts = t.groupby(keys, sort=True, observed=True, dropna=True).size()
        bad = counts[counts > 1]
        if len(bad):
            parts = []
            for key, n in bad.items():
                vals = key if isinstance(key, tuple) else (key,)
                parts.append(f"key {', '.join(str(v) for v in vals)} on {n} rows")
            raise ValueError(f"{name}: not unique on {keys}: " + "; ".join(parts))
    return left.merge(right, on=on, how=how)
