"""Wrong: counts duplicates over the whole column and over whole key rows, so missing values on several rows count as duplicates ("Missing values are never ... duplicates"; "rows with a missing value in any of the key's columns are ignored")."""
# fails: test-contract


# %% grade_id=contract-answer
def check_contract(df, contract):
    if isinstance(df, pl.DataFrame):
        kinds = {name: column_kind(dtype) for name, dtype in df.schema.items()}
        table = df.to_pandas()
    else:
        kinds = {name: column_kind(df[name].dtype) for name in df.columns}
        table = df
    rules = contract["columns"]
    found = []
    for name, rule in rules.items():
        if name not in table.columns:
            found.append((name, "present", 1))
            continue
        if rule.get("kind") is not None and kinds[name] != rule["kind"]:
            found.append((name, "kind", 1))
            continue
        values = table[name]
        missing = values.isna().to_numpy(dtype=bool)
        present = values[~missing]
        if kinds[name] == "category":
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
            counts.append(("unique", int(values.duplicated(keep=False).sum())))
        found += [(name, r, n) for r, n in counts if n > 0]
    if not contract.get("extra_columns", False):
        found += [(name, "extra", 1) for name in table.columns if name not in rules]
    for key in contract.get("unique_together", []):
        key = list(key)
        if all(c in table.columns for c in key):
            n_bad = int(table[key].duplicated(keep=False).sum())
            if n_bad:
                found.append((",".join(key), "unique", n_bad))
    return sorted(found)
