"""Wrong: the usual recipe, sort by order_by and keep the last row of each key: ties on order_by go to the row that came last in the file ("two versions with the same order_by are decided by their content, never by their position")."""
# fails: test-dedup


# %% grade_id=dedup-answer
def dedup_latest(df, keys, order_by):
    key_list = [keys] if isinstance(keys, str) else list(keys)
    if not key_list:
        raise ValueError("no keys")
    lacking = [c for c in [*key_list, order_by] if c not in df.columns]
    if lacking:
        raise KeyError(lacking)
    latest = df.sort_values(order_by, na_position="first", kind="stable").drop_duplicates(key_list, keep="last")
    return latest.sort_values(key_list, na_position="last", kind="stable").reset_index(drop=True)
