"""Wrong: the column rule "unique" looks for duplicates over the whole column, missing values included, so two missing values count as 2 duplicates, breaking "Missing values are never below, above, outside `allowed` or duplicates: only `"not_null"` counts them"."""
# fails: test-contract

# %% grade_id=contract-answer
import numpy as np
import pandas as pd
import polars as pl


def check_contract(df, contract: dict) -> list[tuple[str, str, int]]:
    """Every violation of ``contract`` by ``df`` (pandas or polars), as sorted ``(column, rule, n_bad)``."""
    is_pl = isinstance(df, pl.DataFrame)
    rules = contract.get("columns", {}) or {}
    names = list(df.columns)
    out = []

    def kind_of(name):
        return column_kind(df.schema[name] if is_pl else df[name].dtype)

    def series(name):
        if is_pl:
            s = df[name]
            miss = s.is_null()
            if s.dtype.is_float():
                miss = miss | s.is_nan().fill_null(False)
            return s.to_pandas(), pd.Series(miss.to_numpy(), dtype=bool)
        s = df[name].reset_index(drop=True)
        return s, s.isna().astype(bool)

    for name in names:
        if name not in rules and not contract.get("extra_columns", False):
            out.append((name, "extra", 1))
    for name, rule in rules.items():
        rule = rule or {}
        if name not in names:
            out.append((name, "present", 1))
            continue
        if rule.get("kind") is not None and kind_of(name) != rule["kind"]:
            out.append((name, "kind", 1))
            continue
        s, miss = series(name)
        s = s.reset_index(drop=True)
        v = s[~miss.to_numpy()]
        if not rule.get("nullable", True):
            out.append((name, "not_null", int(miss.sum())))
        if rule.get("min") is not None:
            out.append((name, "min", int((v < rule["min"]).sum())))
        if rule.get("max") is not None:
            out.append((name, "max", int((v > rule["max"]).sum())))
        if rule.get("allowed") is not None:
            out.append((name, "allowed", int((~v.isin(list(rule["allowed"]))).sum())))
        if rule.get("unique", False):
            out.append((name, "unique", int(s.duplicated(keep=False).sum())))
    for key in contract.get("unique_together", []) or []:
        key = list(key)
        if any(k not in names for k in key):
            continue
        parts, misses = [], np.zeros(len(df), dtype=bool)
        for k in key:
            s, miss = series(k)
            parts.append(s.reset_index(drop=True).rename(k))
            misses |= miss.to_numpy()
        sub = pd.concat(parts, axis=1)[~misses]
        out.append((",".join(key), "unique", int(sub.duplicated(keep=False).sum())))
    return sorted((c, r, n) for c, r, n in out if n > 0)
