"""Wrong: converts a polars table to pandas first and reads the kinds from the converted dtypes, so a polars Int64 column with a null is a "float" ("with the dtype of the table you were given, pandas or polars")."""
# fails: test-contract


# %% grade_id=contract-answer
def check_contract(df, contract):
    table = df.to_pandas() if isinstance(df, pl.DataFrame) else df
    rules = contract["columns"]
    found = []
    for name, rule in rules.items():
        if name not in table.columns:
            found.append((name, "present", 1))
            continue
        kind = column_kind(table[name].dtype)
        if rule.get("kind") is not None and kind != rule["kind"]:
            found.append((name, "kind", 1))
            continue
        values = table[name]
        missing = values.isna().to_numpy(dtype=bool)
        present = values[~missing]
        if kind == "category":
            present = present.astype(object)
        counts = []
        if not rule.get("nullable", True):
            counts.append(("not_null", int(missing.sum())))
        if rule.get("min") is not None:
            counts.append(("min", int((present < rule["min"]).sum())))
        if rule.get("max") is not None:
            counts.append(("max", int((present > rule["max"]).sum())))
        if rule.get("allowed") is not None:
            counts.append(("allowed", int((~present.isin(list(rule["allowed"]))).sum())))
        if rule.get("unique", False):
            counts.append(("unique", int(present.duplicated(keep=False).sum())))
        found += [(name, r, n) for r, n in counts if n > 0]
    if not contract.get("extra_columns", False):
        found += [(name, "extra", 1) for name in table.columns if name not in rules]
    for key in contract.get("unique_together", []):
        key = list(key)
        if all(c in table.columns for c in key):
            rows = table[key]
            complete = rows[~rows.isna().any(axis=1)]
            n_bad = int(complete.duplicated(keep=False).sum())
            if n_bad:
                found.append((",".join(key), "unique", n_bad))
    return sorted(found)
