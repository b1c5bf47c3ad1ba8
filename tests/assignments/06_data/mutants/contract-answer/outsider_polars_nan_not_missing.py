"""Wrong: the polars branch treats only null as missing, so a float NaN in a polars table is not counted by "not_null" and is counted by "max"/"allowed"/"unique", breaking "**Missing values** are ... `null` **and `NaN`** in polars: a float NaN is as missing as a null"."""
# fails: test-contract

# %% grade_id=contract-answer
import pandas as pd
import polars as pl


def _bound(value):
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def _check_polars(df, contract):
    rules = contract.get("columns", {}) or {}
    out = []
    for name in df.columns:
        if name not in rules and not contract.get("extra_columns", False):
            out.append((name, "extra", 1))
    for name, rule in rules.items():
        rule = rule or {}
        if name not in df.columns:
            out.append((name, "present", 1))
            continue
        if rule.get("kind") is not None and column_kind(df.schema[name]) != rule["kind"]:
            out.append((name, "kind", 1))
            continue
        s = df[name]
        v = s.drop_nulls()
        if not rule.get("nullable", True):
            out.append((name, "not_null", s.null_count()))
        if rule.get("min") is not None:
            out.append((name, "min", int((v < _bound(rule["min"])).sum())))
        if rule.get("max") is not None:
            out.append((name, "max", int((v > _bound(rule["max"])).sum())))
        if rule.get("allowed") is not None:
            out.append((name, "allowed", int((~v.is_in(list(rule["allowed"]))).sum())))
        if rule.get("unique", False):
            out.append((name, "unique", int(v.is_duplicated().sum())))
    for key in contract.get("unique_together", []) or []:
        key = list(key)
        if any(k not in df.columns for k in key):
            continue
        sub = df.select(key).drop_nulls()
        out.append((",".join(key), "unique", int(sub.is_duplicated().sum())))
    return out


def _check_pandas(df, contract):
    rules = contract.get("columns", {}) or {}
    out = []
    for name in df.columns:
        if name not in rules and not contract.get("extra_columns", False):
            out.append((name, "extra", 1))
    for name, rule in rules.items():
        rule = rule or {}
        if name not in df.columns:
            out.append((name, "present", 1))
            continue
        if rule.get("kind") is not None and column_kind(df[name].dtype) != rule["kind"]:
            out.append((name, "kind", 1))
            continue
        s = df[name]
        v = s[s.notna()]
        if not rule.get("nullable", True):
            out.append((name, "not_null", int(s.isna().sum())))
        if rule.get("min") is not None:
            out.append((name, "min", int((v < rule["min"]).sum())))
        if rule.get("max") is not None:
            out.append((name, "max", int((v > rule["max"]).sum())))
        if rule.get("allowed") is not None:
            out.append((name, "allowed", int((~v.isin(list(rule["allowed"]))).sum())))
        if rule.get("unique", False):
            out.append((name, "unique", int(v.duplicated(keep=False).sum())))
    for key in contract.get("unique_together", []) or []:
        key = list(key)
        if any(k not in df.columns for k in key):
            continue
        sub = df[key].dropna()
        out.append((",".join(key), "unique", int(sub.duplicated(keep=False).sum())))
    return out


def check_contract(df, contract: dict) -> list[tuple[str, str, int]]:
    """Every violation of ``contract`` by ``df`` (pandas or polars), as sorted ``(column, rule, n_bad)``."""
    out = _check_polars(df, contract) if isinstance(df, pl.DataFrame) else _check_pandas(df, contract)
    return sorted((c, r, int(n)) for c, r, n in out if n > 0)
